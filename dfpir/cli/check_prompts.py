"""Check how close a model's DGCPM channel orders are to changing under small prompt changes.

    dfpir check_prompts --config configs/demo.yaml                  # initial weights
    dfpir check_prompts --ckpt runs/five_task/checkpoints/best.pt
    dfpir check_prompts --ckpt dfpir_three_task.ckpt --config configs/three_task.yaml \\
        --set prompts.encoder=file --set prompts.table=prompts_clip.pt

Per DGPB and task: the smallest gap between consecutive sorted DGM scores, and how many of the
2C channel positions change when the prompt embedding gets random noise of relative norm 1e-4,
1e-3 and 1e-2 (mean and max over --trials directions). Without --ckpt the model is initialised
from the config's seed as the trainer does; the DGM never trains (unless model.learnable_dgm),
so its orders are those of every checkpoint trained from that config and seed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from ..analysis import (
    NOISE_LEVELS,
    Analysis,
    default_tasks,
    format_sensitivity,
    load_analysis,
    prompt_sensitivity,
    write_csv_rows,
)
from ..config import ConfigError, load_config
from ..device import resolve_device
from ..errors import FigureError
from ..models import DFPIR
from ..outputs import claim_file, replaced, writing_to
from .common import float_in, int_in, run_cli


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir check_prompts`` / ``scripts/check_prompts.py``."""
    parser = argparse.ArgumentParser(prog=prog or "check_prompts.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="checkpoint (ours or a release one, with --config)")
    parser.add_argument("--config", help="YAML config (default: the one in the checkpoint)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value (repeatable)")
    parser.add_argument("--tasks", nargs="+", help="degradations (default: the config's)")
    parser.add_argument("--levels", nargs="+", type=float_in(0, above=True),
                        default=list(NOISE_LEVELS),
                        help="relative noise norms (default: 1e-4 1e-3 1e-2)")
    parser.add_argument("--trials", type=int_in(1, 10_000), default=8,
                        help="noise directions per level")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise directions")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--csv", help="also write the rows to this CSV file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the --csv file when it exists (without it: an error)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Print (and with --csv write) the sensitivity table."""
    if not (args.ckpt or args.config):
        raise ConfigError("give --ckpt and/or --config")
    if args.csv:
        claim_file(args.csv, "--csv", args.overwrite,
                   inputs={"--ckpt": args.ckpt, "--config": args.config})
    device = resolve_device(args.device)
    if args.ckpt:
        analysis = load_analysis(args.ckpt, args.config, args.overrides, device)
        source = args.ckpt
    else:
        cfg = load_config(args.config, args.overrides)
        torch.manual_seed(cfg.seed)  # the trainer's initialisation
        analysis = Analysis(DFPIR(cfg.model), cfg, device)
        source = f"initial weights of {args.config} (seed {cfg.seed})"
    tasks = args.tasks or default_tasks(analysis.cfg)
    if not analysis.has_prompts:
        raise FigureError("this model has no DGPB (the Restormer baseline): no prompts")
    rows = prompt_sensitivity(analysis.model, analysis.prompts(tasks), tasks, args.levels,
                              args.trials, args.seed)
    print(f"model: {source}; prompts: {analysis.cfg.prompts.encoder} "
          f"({analysis.cfg.prompts.style}); {args.trials} noise directions per level\n")
    print(format_sensitivity(rows, args.levels))
    if args.csv:
        with writing_to(args.csv, "--csv"), replaced(args.csv) as tmp:
            write_csv_rows(tmp, rows, args.levels)
        print(f"\nwrote {args.csv}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir check_prompts``: 0, or 2 for a bad config, checkpoint or prompt encoder."""
    return run_cli(build_parser(prog), run, argv)
