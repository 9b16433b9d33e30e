"""Everything a GPU run must show, in one command: model throughput, end-to-end training and
inference, written as a Markdown report (for the README's Speed section) and JSON.

    python scripts/device_report.py                      # the full report, ~8 minutes on one H100
    python scripts/device_report.py --quick              # tiny sizes, runs on a CPU in seconds
    python scripts/device_report.py --sections inference --out reports/h100
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dfpir.device_report import ReportSettings, run_report

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("throughput", "training", "inference")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="device_report", help="folder for the .md and .json")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:N")
    parser.add_argument("--quick", action="store_true",
                        help="tiny model, images and iteration counts (a smoke test)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--config", default=str(ROOT / "configs" / "five_task.yaml"),
                        help="the recipe to time (three_task.yaml must sit beside it)")
    parser.add_argument("--train-iters", type=int, default=None,
                        help="iterations per training run (default 300; quick: 3)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    args = parser.parse_args(argv)
    config = Path(args.config)
    if not config.is_file() or not (config.parent / "three_task.yaml").is_file():
        print(f"error: {config} (with three_task.yaml beside it) not found; expected the "
              "repository's configs folder", file=sys.stderr)
        return 2
    settings = (ReportSettings.for_quick(args.device) if args.quick
                else ReportSettings(device=args.device))
    if args.train_iters is not None:
        settings.train_iters = args.train_iters
    if args.workers is not None:
        settings.num_workers = args.workers
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    run_report(args.out, settings, config, tuple(args.sections),
               progress=lambda msg: print(msg, flush=True))
    print((Path(args.out) / "device_report.md").read_text())
    print(f"wrote {Path(args.out) / 'device_report.md'} and device_report.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
