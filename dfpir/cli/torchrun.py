"""``dfpir torchrun``: torchrun, with the exit status of a stop (``dfpir.train.torchrun``).

    dfpir torchrun --nproc_per_node 4 scripts/train.py --config configs/five_task.yaml

Takes exactly torchrun's arguments; use it where a scheduler reads the exit status (SLURM's
``scancel`` and ``--signal``: 143 after a saved stop, not 1 with a traceback).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..train.torchrun import launch

__all__ = ["build_parser", "main"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The usage of ``dfpir torchrun`` (its options are torchrun's: ``torchrun --help``)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="torchrun (torch.distributed.run) with the same arguments; a "
        "stop on SIGTERM/SIGINT (torchrun signalled, or its workers stopped on one after "
        "saving latest.pt) exits 128 + the signal with one line, as a single-process run "
        "does, instead of 1 with a traceback. Another failure is one line naming each failed "
        "rank and how it ended, and exit 1.")
    parser.add_argument("torchrun_args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="torchrun's options, the training script and its arguments "
                        "(see torchrun --help)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir torchrun``."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(f"error: {prog or 'dfpir torchrun'} needs torchrun's arguments: its options, the "
              "training script and the script's arguments (see --help)", file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        build_parser(prog).print_help()
        return 0
    return launch(args, prog or "dfpir torchrun")
