"""Draw the paper's analysis figures (and a restoration grid) for a checkpoint.

    python scripts/visualize.py all --ckpt runs/demo/checkpoints/latest.pt --out figures

A shim kept so the documented commands work: the command is ``dfpir visualize``
(``dfpir.cli.visualize``); see ``python scripts/visualize.py --help``.
"""

import sys

from dfpir.cli.visualize import main

if __name__ == "__main__":
    sys.exit(main(keep_memory=True))
