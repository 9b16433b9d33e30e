"""``dfpir device_report`` (``scripts/device_report.py``): everything a GPU run must show, in one
command: precision (channel orders under bf16/fp16/TF32), model throughput, end-to-end training
(data wait, per-stage memory, recompilation) and inference, written as a Markdown report (for
the README's Speed section) and JSON, rewritten as each part is measured.

    python scripts/device_report.py                      # the full report, ~8 minutes on one H100
    python scripts/device_report.py --quick              # tiny sizes, runs on a CPU in seconds
    python scripts/device_report.py --sections inference --out reports/h100
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..device import resolve_device
from ..errors import ConfigError
from ..outputs import check_output_place
from ..perf.device_report import SECTIONS, ReportSettings, run_report
from .common import add_device, run_cli

ROOT = Path(__file__).resolve().parents[2]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir device_report`` / ``scripts/device_report.py``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Model throughput, end-to-end training and inference on one "
                               "device, as a Markdown and JSON report.")
    parser.add_argument("--out", default="device_report", help="folder for the .md and .json")
    add_device(parser, default="auto")
    parser.add_argument("--quick", action="store_true",
                        help="tiny model, images and iteration counts (a smoke test)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--config", default=str(ROOT / "configs" / "five_task.yaml"),
                        help="the recipe to time (three_task.yaml must sit beside it)")
    parser.add_argument("--train-iters", type=int, default=None,
                        help="iterations per training run (default 300; quick: 3)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out torch.compile (its first compile of the full model "
                             "took 6 minutes on an H200)")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="F",
                        help="multiply every section's time budget by F (e.g. 0.5 for a short "
                             "device lease; rows that no longer fit are reported as skipped)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Check the inputs (nothing is written before), measure, write and print the report."""
    config = Path(args.config)
    if not config.is_file() or not (config.parent / "three_task.yaml").is_file():
        raise ConfigError(f"{config} (with three_task.yaml beside it) not found; expected the "
                          "repository's configs folder")
    if args.train_iters is not None and args.train_iters < 1:
        raise ConfigError(f"--train-iters {args.train_iters}: expected a positive count")
    if args.workers is not None and args.workers < 0:
        raise ConfigError(f"--workers {args.workers}: expected 0 or more")
    if not 0 < args.time_scale <= 100:
        raise ConfigError(f"--time-scale {args.time_scale}: expected a number in (0, 100]")
    check_output_place(args.out, "dir", "--out")
    device = str(resolve_device(args.device))
    if device == "cpu" and not args.quick:
        print("note: no CUDA GPU here: the full report times the full-size model on the CPU, "
              "which takes hours (--quick is the CPU's smoke test)", file=sys.stderr, flush=True)
    settings = ReportSettings.for_quick(device) if args.quick else ReportSettings(device=device)
    if args.train_iters is not None:
        settings.train_iters = args.train_iters
    if args.workers is not None:
        settings.num_workers = args.workers
    settings.scale_budgets(args.time_scale)
    if args.no_compile:
        settings.modes = [m for m in settings.modes if "compile" not in m]
        settings.compile_check = False
        settings.train_compile_modes = []
    run_report(args.out, settings, config, tuple(args.sections),
               progress=lambda msg: print(msg, flush=True))
    out = Path(args.out)
    print((out / "device_report.md").read_text())
    print(f"wrote {out / 'device_report.md'} and device_report.json", flush=True)
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir device_report``."""
    return run_cli(build_parser(prog), run, argv)
