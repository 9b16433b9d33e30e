"""Our DFPIR against the authors' release model on the CPU: output difference and speed.

    dfpir compare_release --release-dir ../DFPIR --size 128 128 --batch 2 --runs 9
    dfpir compare_release --release-dir ../DFPIR --size 720 1280 --batch 1 --runs 3

Needs a local clone of https://github.com/TxpHome/DFPIR (its ``net/model.py``; CLIP is not
needed). Full-size models, random weights shared through ``ours_to_release``, fp32,
``torch.inference_mode``; the two models run in turn, and the medians are reported.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..perf.release_compare import check_settings, compare_with_release, load_release_class
from .common import run_cli


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir compare_release`` / ``scripts/compare_release.py``."""
    parser = argparse.ArgumentParser(prog=prog or "compare_release.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--release-dir", required=True,
                        help="a clone of TxpHome/DFPIR (the folder holding net/model.py)")
    parser.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed forwards of each model")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(args: argparse.Namespace) -> int:
    """Check the settings, load the release's class, then compare and time."""
    height, width = args.size
    shape = (args.batch, 3, height, width)
    check_settings(shape, args.runs, args.threads)
    release_cls = load_release_class(args.release_dir)
    result = compare_with_release(release_cls, shape, runs=args.runs, threads=args.threads,
                                  seed=args.seed)
    print(result.summary())
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir compare_release``."""
    return run_cli(build_parser(prog), run, argv)
