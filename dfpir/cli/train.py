"""``dfpir train`` (``scripts/train.py``): train DFPIR from a YAML config, on one device or under
torchrun.

    dfpir train --config configs/five_task.yaml
    dfpir train --config configs/three_task.yaml --set model.gamma=0.7 --run-dir runs/g07
    dfpir train --config configs/five_task.yaml --resume --run-dir runs/five_task
    torchrun --nproc_per_node 4 scripts/train.py --config configs/five_task.yaml

Every check (config values, device, data folders, prompt encoder) runs before the run directory
is created, so a bad command leaves nothing on disk. ``--resume`` takes the architecture from
the run's checkpoint (``dfpir.loading``): a YAML or ``--set model.*`` that disagrees is an error
unless ``--override-arch``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from ..config import ExperimentConfig, load_config
from ..loading import experiment_config
from ..models.checkpoint import read_checkpoint
from ..train import train
from .common import add_config, add_device, add_override_arch, run_cli

__all__ = ["build_parser", "main", "run", "training_config"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir train`` / ``scripts/train.py``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Train DFPIR from a YAML config, on one device or under torchrun.")
    add_config(parser, required=True, help="YAML experiment config")
    add_device(parser)
    parser.add_argument("--run-dir", help="where to write the run (default: output_dir/name)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in a run directory that already holds a run")
    add_override_arch(parser)
    return parser


def training_config(config: str, overrides: Sequence[str], run_dir: str | None = None,
                    resume: bool = False, override_arch: bool = False
                    ) -> tuple[ExperimentConfig, Path]:
    """The config to train with and the run directory. On ``resume`` the architecture comes
    from the run's latest checkpoint (the one loading rule of ``dfpir.loading``)."""
    cfg = load_config(config, overrides)
    folder = Path(run_dir or Path(cfg.output_dir) / cfg.name)
    latest = folder / "checkpoints" / "latest.pt"
    if resume and latest.is_file():
        cfg, _ = experiment_config(read_checkpoint(latest), config, overrides,
                                   override_arch=override_arch, source=str(latest))
    return cfg, folder


def run(args: argparse.Namespace) -> int:
    """Train; returns the exit status."""
    logging.getLogger("dfpir").setLevel(logging.INFO)
    overrides = list(args.overrides)
    if args.device is not None:
        overrides.append(f"train.device={json.dumps(args.device)}")
    cfg, run_dir = training_config(args.config, overrides, args.run_dir, args.resume,
                                   args.override_arch)
    train(cfg, run_dir, resume=args.resume, overwrite=args.overwrite)
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir train``: 0, or 2 with ``error: ...`` for a bad config, device, data folder,
    prompt encoder, run directory or a diverged loss."""
    return run_cli(build_parser(prog), run, argv)
