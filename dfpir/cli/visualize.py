"""``dfpir visualize`` (``scripts/visualize.py``): draw the paper's analysis figures (and a
restoration grid) for a checkpoint.

    python scripts/visualize.py tsne     --ckpt runs/demo/checkpoints/latest.pt --out runs/figures
    python scripts/visualize.py shuffle  --ckpt CKPT --config configs/three_task.yaml
    python scripts/visualize.py features --ckpt CKPT --set-name builtin_derain --block all
    python scripts/visualize.py features --ckpt CKPT --image rainy.png --task derain
    python scripts/visualize.py grid     --ckpt CKPT --out runs/figures
    python scripts/visualize.py all      --ckpt CKPT --out runs/figures

Each sub-command writes NAME.png and the numbers behind it (CSV, .npz) to --out. The config is
--config when given, else the one stored in the checkpoint (ours), else the defaults (a release
checkpoint needs --config for its data and prompts); --set KEY=VALUE overrides it. The model
is loaded by dfpir.loading.load_experiment (the architecture stored in the checkpoint wins;
--override-arch lets --config/--set model.* replace it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..analysis import (
    DEFAULT_LAYER,
    Analysis,
    compute_features,
    compute_grid,
    compute_shuffle,
    compute_tsne,
    load_analysis,
    pick_image,
    save_features,
    save_grid,
    save_shuffle,
    save_tsne,
)
from ..device import keep_freed_memory
from ..errors import FigureError
from ..outputs import claim_names, new_file_mode
from .common import add_ckpt, add_config, add_device, add_override_arch, int_in, run_cli

COMMANDS = ("tsne", "shuffle", "features", "grid")

#: The files each figure writes into --out (its save_* function's names).
FIGURE_FILES = {
    "tsne": ("tsne.png", "tsne.csv", "tsne_summary.csv", "tsne.npz"),
    "shuffle": ("shuffle.png", "shuffle_differ.csv", "shuffle_identity.csv", "shuffle.npz"),
    "features": ("features.png", "features.csv", "features.npz"),
    "grid": ("grid.png", "grid.csv"),
}


def _common(parser: argparse.ArgumentParser) -> None:
    add_ckpt(parser, help="checkpoint (ours or a release one)")
    add_config(parser, help="YAML config (default: the one in the checkpoint)")
    add_override_arch(parser)
    parser.add_argument("--out", default="runs/figures",
                        help="output folder (default: runs/figures, outside the tracked docs/)")
    add_device(parser, default="auto")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the figure's files in --out (without it, files of that "
                        "name there are an error)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of user errors too")
    parser.add_argument("--title", default="", help="prefix for the figure titles")
    parser.add_argument("--seed", type=int, default=0, help="crops and t-SNE seed")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice; 1 is often fastest "
                             "for the small demo model on a busy machine)")


def _tsne_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer", default=DEFAULT_LAYER,
                        help="module whose output is embedded (default: dgpb_latent, the "
                             "latent after its DGPB; 'latent' is the one before it)")
    parser.add_argument("--crops", type=int_in(0, 1000), default=4,
                        help="random crops per image, each one more point (default 4; 0 = "
                        "each whole image, one point; at most 1000)")
    parser.add_argument("--crop-size", type=int, default=96,
                        help="crop side, clipped to the image's shorter side (default 96)")
    parser.add_argument("--max-images", type=int, default=0,
                        help="first N images of each test set (default: all)")
    parser.add_argument("--sets", nargs="+", help="test sets to use (default: all)")
    parser.add_argument("--perplexity", type=float, default=30.0,
                        help="t-SNE perplexity, clipped to (samples - 1) / 3")
    parser.add_argument("--metric", default="euclidean",
                        help="distance for t-SNE and the silhouette (euclidean, cosine, ...)")


def _shuffle_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", nargs="+",
                        help="degradation prompts (default: every task the config knows)")


def _features_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="an image file (default: a test set image)")
    parser.add_argument("--task", help="its degradation (the prompt); needed with --image")
    parser.add_argument("--set-name", help="test set to take the image from (default: first)")
    parser.add_argument("--index", type=int, default=0, help="image index in --set-name")
    parser.add_argument("--block", default="dgpb_level1",
                        help="DGPB to draw: dgpb_level1..3, dgpb_latent or all")
    parser.add_argument("--cmap", default="viridis", help="matplotlib colour map of the maps")


def _grid_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid-index", type=int, default=0,
                        help="which image of each test set (default: the first)")
    parser.add_argument("--grid-sets", nargs="+", help="test sets (default: all)")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir visualize`` / ``scripts/visualize.py``."""
    parser = argparse.ArgumentParser(prog=prog, description="Draw the paper's analysis figures (and a restoration grid) for a checkpoint.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)
    adders = {"tsne": (_tsne_args,), "shuffle": (_shuffle_args,),
              "features": (_features_args,), "grid": (_grid_args,),
              "all": (_tsne_args, _shuffle_args, _features_args, _grid_args)}
    helps = {"tsne": "t-SNE of pooled features by task, with a silhouette score (Figure 3)",
             "shuffle": "DGCPM channel order per prompt and pairwise differences (Figure 7)",
             "features": "channel-mean feature maps through a DGPB (Figure 6)",
             "grid": "degraded / restored / ground truth, one row per test set",
             "all": "all four figures from one load of the model"}
    for name, functions in adders.items():
        command = sub.add_parser(name, help=helps[name], description=helps[name])
        _common(command)
        for add in functions:
            add(command)
    return parser


def _report(name: str, paths: dict[str, Path], start: float, extra: str = "") -> None:
    files = ", ".join(str(p) for p in paths.values())
    print(f"{name}: {files}{extra} ({time.perf_counter() - start:.1f} s)", flush=True)


def run(command: str, analysis: Analysis, args: argparse.Namespace) -> dict[str, Path]:
    """Draw one figure into ``args.out``; returns the files written. The files are drawn in a
    hidden folder beside them and renamed into place: an existing name (with ``--overwrite``)
    is replaced as a name, never written through (a hard link's other name or a symbolic
    link's target keeps its content)."""
    out, start = Path(args.out), time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".drawing_") as staging:
        drawn, extra = _draw(command, analysis, args, Path(staging))
        paths = {}
        for key, path in drawn.items():
            target = out / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path, new_file_mode())
            os.replace(path, target)
            paths[key] = target
    _report(command, paths, start, extra)
    return paths


def _draw(command: str, analysis: Analysis, args: argparse.Namespace, out: Path
          ) -> tuple[dict[str, Path], str]:
    """Compute and save one figure into ``out``: (its files, what to add to the report)."""
    if command == "tsne":
        result = compute_tsne(analysis, args.layer, args.crops, args.crop_size,
                              args.max_images, args.sets, args.perplexity, args.seed,
                              args.metric)
        return (save_tsne(result, out, args.title),
                f"; {len(result.tasks)} points, silhouette {result.silhouette:.3f}")
    if command == "shuffle":
        result = compute_shuffle(analysis, args.tasks)
        mean = result.mean_differ()
        off = mean[~np.eye(len(result.tasks), dtype=bool)]
        return (save_shuffle(result, out, args.title),
                f"; mean fraction differing {off.mean():.3f}" if off.size else "")
    if command == "features":
        image, clean, task, name = pick_image(analysis, args.image, args.task, args.set_name,
                                              args.index)
        blocks = (list(analysis.model.dgpbs()) if args.block == "all" else [args.block])
        result = compute_features(analysis, image, task, blocks, clean, name)
        return save_features(result, out, args.cmap, args.title), ""
    if command == "grid":
        rows = compute_grid(analysis, args.grid_index, args.grid_sets)
        return save_grid(rows, out, args.title), ""
    raise ValueError(f"unknown command {command!r}")


def main(argv: Sequence[str] | None = None, keep_memory: bool = False,
         prog: str | None = None) -> int:
    """Run the command line; ``keep_memory`` stops glibc from returning freed memory to the
    OS (fewer page faults on the CPU; set for the whole process, so only from the shell)."""

    def run_figures(args: argparse.Namespace) -> int:
        commands = COMMANDS if args.command == "all" else (args.command,)
        claim_names(args.out, [f for c in commands for f in FIGURE_FILES[c]], "--out",
                    args.overwrite, inputs={"--ckpt": args.ckpt, "--config": args.config})
        if args.threads:
            torch.set_num_threads(args.threads)
        if keep_memory and not str(args.device).startswith("cuda"):
            keep_freed_memory()
        analysis = load_analysis(args.ckpt, args.config, args.overrides, args.device,
                                 override_arch=args.override_arch)
        if args.command != "all":
            try:
                run(args.command, analysis, args)
            except ValueError as err:  # a figure that does not apply to this model or data
                raise FigureError(f"{args.command}: {err}") from err
            return 0
        for command in COMMANDS:  # a figure that does not apply (no DGCPM, ...) is skipped
            try:
                run(command, analysis, args)
            except ValueError as err:
                print(f"{command}: skipped: {err}", file=sys.stderr)
        return 0

    return run_cli(build_parser(prog), run_figures, argv)
