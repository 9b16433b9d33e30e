"""Train DFPIR from a YAML config, on one device or under torchrun.

    python scripts/train.py --config configs/five_task.yaml
    python scripts/train.py --config configs/three_task.yaml --set model.gamma=0.7 --run-dir runs/g07
    python scripts/train.py --resume --run-dir runs/five_task
    torchrun --nproc_per_node 4 scripts/train.py --config configs/five_task.yaml

Exit status: 0 trained; 2 an error (one line: bad config, run directory in use or already
holding a run, non-finite loss, unusable checkpoint, disk full); 130/143 stopped by SIGINT/SIGTERM
after saving checkpoints/latest.pt (continue with --resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dfpir.config import ConfigError, load_config
from dfpir.models.checkpoint import CheckpointError
from dfpir.train import (
    NonFiniteLossError,
    RunDirError,
    StopNow,
    TrainingInterrupted,
    stored_config,
    train,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML experiment config (with --resume: optional, "
                        "default the run's stored config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value (repeatable)")
    parser.add_argument("--run-dir", help="where to write the run (default: output_dir/name)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir with its stored config")
    parser.add_argument("--resume-with-changes", action="store_true",
                        help="--resume, applying a config that differs from the stored one "
                             "(recorded in the run's config_changes.yaml)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in a run directory that already holds a run "
                             "(deletes that run's checkpoints, logs and exports)")
    args = parser.parse_args(argv)
    resume = args.resume or args.resume_with_changes
    if not args.config and not (resume and args.run_dir):
        parser.error("--config is required (only --resume --run-dir DIR can do without)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.config:
            cfg = load_config(args.config, args.overrides)
        else:
            cfg = stored_config(args.run_dir, args.overrides)
        run_dir = Path(args.run_dir or Path(cfg.output_dir) / cfg.name)
        train(cfg, run_dir, resume=resume, overwrite=args.overwrite,
              resume_with_changes=args.resume_with_changes)
    except (ConfigError, RunDirError, NonFiniteLossError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (TrainingInterrupted, StopNow) as err:
        print(f"stopped: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
