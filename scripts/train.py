"""Train DFPIR from a YAML config, on one device or under torchrun.

    python scripts/train.py --config configs/five_task.yaml
    python scripts/train.py --config configs/three_task.yaml --set model.gamma=0.7 --run-dir runs/g07
    python scripts/train.py --config configs/five_task.yaml --resume --run-dir runs/five_task
    torchrun --nproc_per_node 4 scripts/train.py --config configs/five_task.yaml
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dfpir.config import ConfigError, load_config
from dfpir.train import NonFiniteLossError, RunDirError, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML experiment config")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value (repeatable)")
    parser.add_argument("--run-dir", help="where to write the run (default: output_dir/name)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in a run directory that already holds a run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.run_dir or Path(cfg.output_dir) / cfg.name)
        train(cfg, run_dir, resume=args.resume, overwrite=args.overwrite)
    except (ConfigError, RunDirError, NonFiniteLossError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
