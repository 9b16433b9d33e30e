"""Train DFPIR from a YAML config, on one device or under torchrun.

    python scripts/train.py --config configs/five_task.yaml
    python scripts/train.py --config configs/three_task.yaml --set model.gamma=0.7 --run-dir runs/g07
    python scripts/train.py --resume --run-dir runs/five_task
    torchrun --nproc_per_node 4 scripts/train.py --config configs/five_task.yaml

A shim kept so the documented commands work: the command is ``dfpir train``
(``dfpir.cli.train``); see ``python scripts/train.py --help``.

Exit status: 0 trained; 2 an error (one line: bad config, run directory in use or already
holding a run, non-finite loss, unusable checkpoint, disk full); 130/143 stopped by SIGINT/SIGTERM
after saving checkpoints/latest.pt (continue with --resume).
"""

import sys

from dfpir.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
