"""Export a training checkpoint: the release's DFPIR checkpoint layout and safetensors.

    python scripts/export.py --ckpt runs/five_task/checkpoints/best.pt --out runs/five_task/export_best

A shim kept so the documented commands work: the command is ``dfpir export``
(``dfpir.cli.export``); see ``python scripts/export.py --help``.
"""

import sys

from dfpir.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
