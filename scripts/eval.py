"""Evaluate a checkpoint on a config's test sets and write the paper's tables.

    python scripts/eval.py --config configs/three_task.yaml --ckpt ckpt/dfpir3.ckpt --out results/d3
    python scripts/eval.py --config configs/five_task.yaml --ckpt ckpt/dfpir5.ckpt --tile 512

A shim kept so the documented commands work: the command is ``dfpir eval``
(``dfpir.cli.eval``); see ``python scripts/eval.py --help``.
"""

import sys

from dfpir.cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
