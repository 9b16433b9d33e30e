"""Evaluate a checkpoint on a config's test sets and write the paper's tables.

    python scripts/eval.py --config configs/three_task.yaml --ckpt ckpt/dfpir3.ckpt --out results/d3
    python scripts/eval.py --config configs/five_task.yaml --ckpt ckpt/dfpir5.ckpt --tile 512

See the README ("Evaluate", "Restore") and ``python scripts/eval.py --help``; the work is done by
``dfpir.evaluate``.
"""

import sys

from dfpir.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
