"""Check how close a model's DGCPM channel orders are to changing under small prompt changes.

    python scripts/check_prompts.py --config configs/demo.yaml                  # initial weights
    python scripts/check_prompts.py --ckpt runs/five_task/checkpoints/best.pt
    python scripts/check_prompts.py --ckpt dfpir_three_task.ckpt --config configs/three_task.yaml \\
        --set prompts.encoder=file --set prompts.table=prompts_clip.pt

A shim kept so the documented commands work: the command is ``dfpir check_prompts``
(``dfpir.cli.check_prompts``, which says what is measured); see ``--help``.
"""

import sys

from dfpir.cli.check_prompts import main

if __name__ == "__main__":
    sys.exit(main())
