"""``dfpir eval`` (``scripts/eval.py``): evaluate a checkpoint on the test sets of a config and
write the paper's tables.

    dfpir eval --config configs/three_task.yaml --ckpt dfpir3.ckpt --out results/d3
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from ..blind.cli import add_eval_arguments
from ..config import FlagOverride
from ..errors import OutputPlaceError
from ..eval.blind import blind_markdown
from ..eval.evaluation import evaluate
from ..eval.report import REPORT_FILES, write_report
from ..eval.tables import PAPER_LAYOUTS
from ..loading import load_experiment
from ..outputs import check_output_place, claim_names, free_folder, writing_to
from .common import add_amp, add_ckpt, add_config, add_device, add_override_arch, int_in, run_cli

__all__ = ["build_parser", "cli_overrides", "main", "results_folder", "run"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir eval`` / ``scripts/eval.py``."""
    parser = argparse.ArgumentParser(
        prog=prog or "eval.py",
        description="Evaluate a DFPIR/Restormer checkpoint on the test sets of a config and "
                    "write the paper's tables (Markdown, CSV, JSON) and per-image metrics.",
    )
    add_config(parser, help="experiment YAML (default: the config stored in the checkpoint, "
                            "else the built-in defaults)")
    add_ckpt(parser)
    add_override_arch(parser)
    parser.add_argument("--out", help="results folder (default: results/eval_<run>_<ckpt "
                        "name>, with _2, _3, ... when that holds results); an existing --out "
                        "that holds files is refused unless --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --out that already holds files (its results are "
                        "replaced; other files are left alone)")
    parser.add_argument("--tile", type=int_in(0), help="tile size for memory-bounded inference "
                        "(0 = whole image, the protocol)")
    parser.add_argument("--tile-overlap", type=int_in(0), help="overlap between tiles in pixels")
    parser.add_argument("--save-images", action="store_true", help="also write restored images")
    parser.add_argument("--quantize", action="store_true",
                        help="round outputs to uint8 before the metrics (as saved images)")
    add_device(parser)
    add_amp(parser)
    parser.add_argument("--max-images", type=int_in(1), default=None,
                        help="evaluate only the first N images of each test set")
    parser.add_argument("--paper-table", default="auto",
                        choices=["auto", "none", *PAPER_LAYOUTS],
                        help="which paper table to compare with")
    parser.add_argument("--paper-row", default="auto",
                        help="the paper's row beside ours (default: DFPIR, Restormer for the "
                        "baseline)")
    parser.add_argument("--name", default="", help="run name in the tables (default: the "
                        "results folder's name)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_eval_arguments(parser)  # blind restoration (dfpir.blind): --classifier, --prompt-matrix
    return parser


def cli_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` entries followed by those the dedicated flags stand for (flags win)."""
    overrides = list(args.overrides)
    if args.tile is not None:
        overrides.append(FlagOverride(f"eval.tile={args.tile}", f"--tile {args.tile}"))
    if getattr(args, "tile_overlap", None) is not None:
        overrides.append(FlagOverride(f"eval.tile_overlap={args.tile_overlap}",
                                      f"--tile-overlap {args.tile_overlap}"))
    if getattr(args, "save_images", False):
        overrides.append("eval.save_images=true")
    if getattr(args, "quantize", False):
        overrides.append("eval.quantize=true")
    if args.device is not None:
        overrides.append(FlagOverride(f"eval.device={json.dumps(args.device)}",
                                      f"--device {args.device}"))
    return overrides


def results_folder(out: str | None, ckpt: str, overwrite: bool = False) -> Path:
    """``--out``, checked: one that holds files is refused unless ``overwrite``. The default
    names the run and the checkpoint (``results/eval_<run>_<ckpt stem>``: a run's
    ``checkpoints/best.pt`` gives ``eval_<run>_best``), stepping to ``_2``, ``_3``, ... past
    a folder that holds files, so no evaluation lands on another's results."""
    if out is None:
        path = Path(ckpt)
        run = path.parent.parent.name if path.parent.name == "checkpoints" else ""
        name = (f"eval_{run[:100]}_{path.stem[:100]}" if run else f"eval_{path.stem[:200]}")
        return check_output_place(free_folder(Path("results") / name), "dir", "--out")
    folder = claim_names(out, REPORT_FILES.values(), "--out", overwrite=True,
                         inputs={"--ckpt": ckpt})
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise OutputPlaceError(f"--out {folder} already holds files; give --overwrite to write "
                               "the results into it, or another --out")
    return folder


def run(args: argparse.Namespace) -> int:
    """Evaluate and write the results folder; returns the exit status."""
    out = results_folder(args.out, args.ckpt, args.overwrite)
    overrides = cli_overrides(args)
    loaded = load_experiment(args.ckpt, args.config, overrides,
                             override_arch=args.override_arch)
    cfg = loaded.cfg
    amp = args.amp or cfg.eval.amp
    max_images = args.max_images if args.max_images is not None else cfg.eval.max_images
    # a disk filling up: error: naming the file
    with writing_to(out, "--out", "run it again with --overwrite (or another --out)"):
        report = evaluate(
            cfg, args.ckpt, overrides=overrides, max_images=max_images,
            amp=None if amp == "none" else amp, paper_table=args.paper_table,
            paper_row=args.paper_row,
            image_dir=out / "images" if cfg.eval.save_images else None,
            name=args.name or out.name, progress=not args.no_progress, loaded=loaded,
            classifier=args.classifier, with_prompt_matrix=args.prompt_matrix,
        )
        paths = write_report(report, out)
    print(report.comparison.markdown(report.name))
    if report.blind is not None:
        print("\n" + blind_markdown(report.blind).rstrip())
    if report.prompt_matrix is not None:
        print("\nPrompt matrix (PSNR; rows: true degradation, columns: prompt):\n"
              + report.prompt_matrix.markdown())
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}"
          + (f" and {out / 'images'}/" if cfg.eval.save_images else ""))
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir eval``: 0, or 2 with ``error: ...`` for a bad config, checkpoint, prompt encoder,
    device or data folder."""
    return run_cli(build_parser(prog), run, argv)
