"""``dfpir benchmark_compile``: compile time and warm step time of the training step in each
``train.compile`` mode, each mode in a fresh process with an empty inductor cache.

    dfpir benchmark_compile --modes none regional default --dim 16 --batch 8 --patch 32
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict

from ..errors import ConfigError
from ..models import DFPIRConfig
from ..models.compiling import COMPILE_MODES
from ..perf.compile_time import markdown, time_modes
from .common import int_in, run_cli

__all__ = ["build_parser", "main", "run"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir benchmark_compile``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Compile time (first step) and warm step time of the training "
        "step per train.compile mode, on the CPU (a proxy of inductor's work on a GPU).")
    parser.add_argument("--modes", nargs="+", default=["none", "regional", "default"],
                        choices=[m for m in COMPILE_MODES if m != "auto"])
    parser.add_argument("--dim", type=int_in(1), default=16)
    parser.add_argument("--batch", type=int_in(1), default=8)
    parser.add_argument("--patch", type=int_in(8), default=32)
    parser.add_argument("--steps", type=int_in(2), default=10, help="warm steps timed")
    parser.add_argument("--threads", type=int_in(1), default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        DFPIRConfig(dim=args.dim)  # the model the modes compile: checked before any starts
    except ValueError as err:
        raise ConfigError(f"--dim: {err}") from None
    if len(set(args.modes)) != len(args.modes):
        raise ConfigError(f"--modes names a mode twice: {' '.join(args.modes)}")
    results = time_modes(args.modes, args.dim, args.batch, args.patch, args.steps, args.threads)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(f"dim {args.dim}, batch {args.batch} of {args.patch}x{args.patch}, "
              f"{args.threads} thread(s), CPU, a fresh inductor cache per mode")
        print(markdown(results), end="")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir benchmark_compile``."""
    return run_cli(build_parser(prog), run, argv)
