"""Write a table of prompt embeddings for `prompts.encoder: file` (run where the CLIP weights are).

    python scripts/export_prompts.py --out prompts_clip.pt
    python scripts/export_prompts.py --out prompts_clip.pt --clip-weights /path/to/ViT-B-32.pt

A shim kept so the documented commands work: the command is ``dfpir export_prompts``
(``dfpir.cli.export_prompts``); see ``python scripts/export_prompts.py --help``.
"""

import sys

from dfpir.cli.export_prompts import main

if __name__ == "__main__":
    sys.exit(main())
