"""Evaluate a checkpoint on the test sets of a config and write the paper's tables.

    python scripts/eval.py --config configs/three_task.yaml --ckpt dfpir3.ckpt --out results/d3

Every image of every test set is restored with its task's prompt, whole (the protocol) or tiled,
and scored with ``dfpir.metrics`` (clipped, float, scikit-image PSNR/SSIM on RGB). The results
folder holds ``results.md`` (the paper's Table 1 or 2 layout with the paper's DFPIR, or for the
baseline Restormer, number and the difference beside each of ours), ``results.csv``,
``results.json`` (everything, including the model config, read by ``scripts/rank.py``),
``per_image.csv`` and, with ``--save-images``, ``images/<set>/<name>.png``.

Checkpoints: ours (``{"model": ..., "config": ...}``; the architecture is taken from the stored
config), the released DFPIR ones and the released Restormer ones (which need no prompt: the
model becomes the baseline). ``--set model.gamma=0.7`` and friends override the config.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from .config import ConfigError, ExperimentConfig, apply_override, build_dataclass, load_config
from .data import build_test_datasets, write_image
from .inference import resolve_device, restore
from .metrics import ImageMetrics, compute_metrics
from .models import DFPIR, DFPIRConfig
from .models.checkpoint import CheckpointError, detect_layout, load_weights, read_checkpoint
from .prompts import PromptBank, build_encoder
from .tables import (
    PAPER_LAYOUTS,
    ComparisonTable,
    choose_paper_table,
    format_diff,
    format_score,
    markdown_table,
    paper_reference_table,
    paper_scores,
    results_table,
)

__all__ = [
    "EvalReport",
    "ImageResult",
    "LoadedModel",
    "SetResult",
    "evaluate",
    "load_model",
    "main",
    "select_model_config",
    "setup_cli_logging",
    "stored_model_config",
    "write_report",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ models from checkpoints


def stored_model_config(ckpt: Mapping) -> dict | None:
    """The model section of the config a checkpoint of ours stores, or ``None``.

    Accepts ``{"config": <ExperimentConfig as dict>}`` (what training writes) and
    ``{"config": <DFPIRConfig as dict>}``.
    """
    stored = ckpt.get("config") if isinstance(ckpt, Mapping) else None
    if not isinstance(stored, Mapping):
        return None
    if isinstance(stored.get("model"), Mapping):
        return dict(stored["model"])
    if stored and set(stored) <= set(DFPIRConfig.__dataclass_fields__):
        return dict(stored)
    return None


def _model_overrides(overrides: Sequence[str]) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0].strip().startswith("model.")]


def select_model_config(ckpt: Mapping, fallback: DFPIRConfig, overrides: Sequence[str] = (),
                        source: str = "the checkpoint") -> tuple[DFPIRConfig, str, list[str]]:
    """The architecture to build for a loaded checkpoint: (config, where it came from, notes).

    The config stored in the checkpoint when there is one (with the ``model.*`` entries of
    ``overrides`` applied on top), else ``fallback`` (the YAML config, overrides included).
    Weights without any DGPB (a released Restormer checkpoint, a baseline run) switch the
    architecture to the baseline, since that is the only model they fit.
    """
    notes: list[str] = []
    stored = stored_model_config(ckpt)
    if stored is not None:
        origin = {"model": f"the config stored in {source}"}
        raw = {"model": stored}
        for override in _model_overrides(overrides):
            apply_override(raw, override, origin)
        try:
            config = build_dataclass(DFPIRConfig, raw["model"], "model", origin)
        except ConfigError as err:
            raise ConfigError(f"the model config stored in {source} does not fit this version "
                              f"of dfpir: {err}") from err
        where = "checkpoint"
    else:
        config, where = fallback, "config"
    _, state = detect_layout(ckpt)
    if config.has_dgpb and state and not any(k.startswith("dgpb_") for k in state):
        config = dataclasses.replace(config, ca=False, dgcpm=False, caapm=False)
        notes.append("the checkpoint has no DGPB weights: evaluating it as the Restormer "
                     "baseline (no prompt)")
    return config, where, notes


@dataclass
class LoadedModel:
    """A model ready for inference and where its architecture and weights came from."""

    model: DFPIR
    config: DFPIRConfig
    layout: str  # ours | dfpir_release | restormer_release | state_dict
    config_source: str  # checkpoint | config
    checkpoint: str
    stored_config: dict | None  # the whole config dict stored in the checkpoint, if any
    notes: list[str] = field(default_factory=list)


def load_model(checkpoint: str | os.PathLike | Mapping, fallback: DFPIRConfig,
               overrides: Sequence[str] = (), device: str | torch.device = "cpu"
               ) -> LoadedModel:
    """Read a checkpoint (ours, DFPIR release, Restormer release; a path or an already loaded
    dict), build the matching model, load the weights strictly and move it to ``device`` in
    eval mode.

    Raises ``CheckpointError`` naming the file when it is missing, corrupt or does not fit.
    """
    if isinstance(checkpoint, Mapping):
        path, ckpt = "the checkpoint", checkpoint
    else:
        path = str(checkpoint)
        ckpt = read_checkpoint(path)
    config, source, notes = select_model_config(ckpt, fallback, overrides, path)
    model = DFPIR(config)
    try:
        layout = load_weights(model, ckpt)
    except CheckpointError as err:
        hint = ("" if source == "checkpoint" else
                ". The checkpoint stores no model config, so the architecture came from the "
                "config (its model: section, --config, --set model.*): make it match the weights")
        if isinstance(checkpoint, Mapping):
            raise CheckpointError(f"{err}{hint}") from err
        raise CheckpointError(f"{path}: {err}{hint}") from err
    stored = ckpt.get("config") if isinstance(ckpt.get("config"), Mapping) else None
    model.to(resolve_device(device)).eval()
    return LoadedModel(model, config, layout, source, path, stored, notes)


# ------------------------------------------------------------------ evaluation


@dataclass
class ImageResult:
    """The scores of one restored test image."""

    image: str
    psnr: float
    ssim: float
    seconds: float


@dataclass
class SetResult:
    """One test set: its per-image scores and their means (the protocol's numbers)."""

    name: str
    task: str
    images: list[ImageResult] = field(default_factory=list)

    @property
    def psnr(self) -> float:
        return sum(r.psnr for r in self.images) / len(self.images) if self.images else math.nan

    @property
    def ssim(self) -> float:
        return sum(r.ssim for r in self.images) / len(self.images) if self.images else math.nan

    @property
    def seconds_per_image(self) -> float:
        return sum(r.seconds for r in self.images) / len(self.images) if self.images else 0.0


@dataclass
class EvalReport:
    """Everything an evaluation produced; ``write_report`` turns it into the results folder."""

    name: str
    checkpoint: str
    layout: str
    config_source: str
    model: DFPIRConfig
    parameters: int
    prompts: dict
    options: dict
    sets: list[SetResult]
    comparison: ComparisonTable
    notes: list[str] = field(default_factory=list)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate_set(
    model: torch.nn.Module,
    dataset: Dataset,
    name: str,
    prompt: torch.Tensor | None,
    *,
    device: torch.device,
    tile: int = 0,
    overlap: int = 32,
    quantize: bool = False,
    amp: str | None = None,
    max_images: int = 0,
    image_dir: Path | None = None,
    num_workers: int = 0,
    metric_threads: int = 2,
    progress: bool = True,
) -> SetResult:
    """Restore and score every image of one test set (items ``(degraded, clean, task, name)``),
    optionally writing the restored images to ``image_dir``.

    The metrics (SSIM takes about as long as a GPU forward pass on a large image) and the
    image writing run in ``metric_threads`` background threads while the next image is
    restored; the results are collected in order, so they do not depend on it.
    """
    if max_images > 0 and len(dataset) > max_images:
        dataset = Subset(dataset, range(max_images))
    task = getattr(dataset, "task", None) or getattr(getattr(dataset, "dataset", None), "task", "")
    result = SetResult(name, task)
    loader = DataLoader(dataset, batch_size=None, shuffle=False,
                        num_workers=num_workers if len(dataset) > 1 else 0,
                        pin_memory=device.type == "cuda")
    bar = tqdm(total=len(dataset), desc=name, unit="img", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    pending: deque[tuple[str, float, Future]] = deque()

    def collect() -> None:
        image_name, seconds, future = pending.popleft()
        scores = future.result()
        result.images.append(ImageResult(image_name, scores.psnr, scores.ssim, seconds))
        bar.update(1)
        bar.set_postfix(psnr=f"{result.psnr:.2f}", ssim=f"{result.ssim:.4f}")

    with ThreadPoolExecutor(max_workers=max(1, metric_threads)) as pool:
        for degraded, clean, _task, image_name in loader:
            start = time.perf_counter()
            output = restore(model, degraded.to(device, non_blocking=True), prompt, tile=tile,
                             overlap=overlap, amp=amp)
            _sync(device)
            seconds = time.perf_counter() - start
            save_to = image_dir / name / f"{image_name}.png" if image_dir is not None else None
            future = pool.submit(_score_and_save, output.cpu(), clean, quantize, save_to)
            pending.append((str(image_name), seconds, future))
            while len(pending) > 2 * max(1, metric_threads):
                collect()
        while pending:
            collect()
    bar.close()
    return result


def _score_and_save(output: torch.Tensor, clean: torch.Tensor, quantize: bool,
                    path: Path | None) -> ImageMetrics:
    if path is not None:
        write_image(path, output)
    return compute_metrics(output, clean, quantize=quantize)


def _prompt_for(bank: PromptBank | None, task: str, device: torch.device) -> torch.Tensor | None:
    return None if bank is None else bank([task], device)[0]


def evaluate(
    cfg: ExperimentConfig,
    checkpoint: str | os.PathLike,
    *,
    overrides: Sequence[str] = (),
    max_images: int = 0,
    amp: str | None = None,
    paper_table: str = "auto",
    paper_row: str = "auto",
    image_dir: str | os.PathLike | None = None,
    name: str = "",
    progress: bool = True,
) -> EvalReport:
    """Evaluate ``checkpoint`` on the test sets of ``cfg`` (``cfg.eval`` gives tile, overlap,
    quantize and device; ``image_dir`` receives the restored images when given).

    ``overrides`` are the ``--set`` entries already applied to ``cfg``; their ``model.*`` ones
    are re-applied on top of a config stored in the checkpoint. ``paper_table``: "auto", a key
    of ``PAPER_LAYOUTS`` or "none"; ``paper_row``: "auto" (DFPIR, or Restormer for the baseline)
    or a row of that table.
    """
    device = resolve_device(cfg.eval.device)
    loaded = load_model(checkpoint, cfg.model, overrides, device)
    for note in loaded.notes:
        logger.info("note: %s", note)
    _warn_prompt_mismatch(loaded.stored_config, cfg)
    datasets = build_test_datasets(cfg.data)
    if not datasets:
        raise ConfigError("the config names no test set (data.test_sets is empty and the "
                          "built-in set is off)")
    table = _paper_table(paper_table, list(datasets), [t.task for t in cfg.data.train_tasks])
    row = paper_row if paper_row != "auto" else ("DFPIR" if loaded.config.has_dgpb
                                                 else "Restormer")
    if table is not None:
        try:
            paper_scores(table, row)
        except KeyError as err:
            raise ConfigError(err.args[0]) from None
    bank = None
    if loaded.config.has_dgpb:
        encoder = build_encoder(cfg.prompts, device=device)
        tasks = list(dict.fromkeys(d.task for d in datasets.values()))
        bank = PromptBank(encoder, tasks, cfg.prompts.style)
        if bank.embeddings.shape[-1] != loaded.config.prompt_dim:
            raise ConfigError(f"the prompt encoder gives {bank.embeddings.shape[-1]}-d "
                              f"embeddings, the model expects {loaded.config.prompt_dim}")
    out_images = Path(image_dir) if image_dir is not None else None
    sets = []
    for set_name, dataset in datasets.items():
        sets.append(evaluate_set(
            loaded.model, dataset, set_name, _prompt_for(bank, dataset.task, device),
            device=device, tile=cfg.eval.tile, overlap=cfg.eval.tile_overlap,
            quantize=cfg.eval.quantize, amp=amp, max_images=max_images, image_dir=out_images,
            num_workers=cfg.data.num_workers, progress=progress,
        ))
    comparison = results_table({s.name: (s.psnr, s.ssim) for s in sets}, table, row)
    options = {
        "tile": cfg.eval.tile,
        "tile_overlap": cfg.eval.tile_overlap,
        "quantize": cfg.eval.quantize,
        "amp": amp or "none",
        "device": str(device),
        "max_images": max_images,
        "data_seed": cfg.data.seed,
        "test_noise": cfg.data.test_noise,
        "data_root": cfg.data.data_root,
    }
    prompts = ({"encoder": cfg.prompts.encoder, "style": cfg.prompts.style}
               if bank is not None else {"encoder": "none (baseline)", "style": ""})
    return EvalReport(
        name=name or Path(checkpoint).stem,
        checkpoint=str(checkpoint),
        layout=loaded.layout,
        config_source=loaded.config_source,
        model=loaded.config,
        parameters=sum(p.numel() for p in loaded.model.parameters()),
        prompts=prompts,
        options=options,
        sets=sets,
        comparison=comparison,
        notes=list(loaded.notes),
    )


def _paper_table(choice: str, names: list[str], train_tasks: list[str]) -> str | None:
    if choice == "auto":
        return choose_paper_table(names, train_tasks)
    if choice == "none":
        return None
    if choice not in PAPER_LAYOUTS:
        raise ConfigError(f"unknown paper table {choice!r}; expected auto, none or one of "
                          f"{list(PAPER_LAYOUTS)}")
    return choice


def _warn_prompt_mismatch(stored: Mapping | None, cfg: ExperimentConfig) -> None:
    prompts = stored.get("prompts") if isinstance(stored, Mapping) else None
    if not isinstance(prompts, Mapping):
        return
    for key in ("encoder", "style"):
        trained = prompts.get(key)
        if trained is not None and trained != getattr(cfg.prompts, key):
            logger.warning("warning: the checkpoint was trained with prompts.%s=%s but this "
                           "evaluation uses %s (set --set prompts.%s=%s to match)", key, trained,
                           getattr(cfg.prompts, key), key, trained)


# ------------------------------------------------------------------ writing the results


def _number(value: float) -> float | str | None:
    """JSON-safe: inf as the string "inf", NaN as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _score_dict(score: tuple[float, float] | None) -> dict | None:
    return None if score is None else {"psnr": _number(score[0]), "ssim": _number(score[1])}


def _diff(ours, paper) -> dict | None:
    if ours is None or paper is None or not math.isfinite(ours[0]):
        return None
    return {"psnr": round(ours[0] - paper[0], 4), "ssim": round(ours[1] - paper[1], 5)}


def report_dict(report: EvalReport) -> dict:
    """The JSON form of a report (what ``results.json`` holds)."""
    comp = report.comparison
    sets = {}
    for s in report.sets:
        ours = (s.psnr, s.ssim)
        paper = comp.paper.get(s.name)
        sets[s.name] = {
            "task": s.task,
            "images": len(s.images),
            "psnr": _number(s.psnr),
            "ssim": _number(s.ssim),
            "paper": _score_dict(paper),
            "diff": _diff(ours, paper),
            "seconds_per_image": round(s.seconds_per_image, 4),
        }
    average = comp.ours.get("average")
    paper_avg = comp.paper.get("average")
    return {
        "name": report.name,
        "checkpoint": report.checkpoint,
        "checkpoint_layout": report.layout,
        "model_config_source": report.config_source,
        "model": dataclasses.asdict(report.model),
        "parameters": report.parameters,
        "prompts": report.prompts,
        "eval": report.options,
        "paper_table": comp.table,
        "paper_row": comp.paper_row,
        "sets": sets,
        "average": {
            "psnr": _number(average[0]) if average else None,
            "ssim": _number(average[1]) if average else None,
            "complete": comp.average_complete,
            "sets": [c for c in comp.columns if c != "average"] if not comp.average_complete
            else list(PAPER_LAYOUTS[comp.table].columns),
            "paper": _score_dict(paper_avg),
            "diff": _diff(average, paper_avg),
        },
        "notes": report.notes,
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def _markdown(report: EvalReport) -> str:
    comp = report.comparison
    m = report.model
    arch = ("Restormer baseline (no DGPB)" if not m.has_dgpb else
            f"DFPIR (dgcpm={m.dgcpm}, attention={m.attention or 'none'}, gamma={m.gamma:g})")
    tile = report.options["tile"]
    how = "whole image (protocol)" if tile <= 0 else (
        f"tiled {tile}px, overlap {report.options['tile_overlap']}px")
    lines = [
        f"# Evaluation: {report.name}",
        "",
        f"- checkpoint: `{report.checkpoint}` ({report.layout}; architecture from the "
        f"{report.config_source})",
        f"- model: {arch}, dim {m.dim}, blocks {m.num_blocks}, {report.parameters:,} parameters",
        f"- prompts: {report.prompts['encoder']} {report.prompts['style']}".rstrip(),
        f"- inference: {how}, autocast {report.options['amp']}, on {report.options['device']}",
        "- metrics: PSNR/SSIM (scikit-image, data_range 1, RGB), output clipped to [0, 1], "
        + ("quantised to uint8" if report.options["quantize"] else "not quantised"),
        f"- test noise: {report.options.get('test_noise', 'seeded')}, seed "
        f"{report.options['data_seed']}",
    ]
    if report.options["max_images"]:
        lines.append(f"- only the first {report.options['max_images']} images of each set")
    lines += [f"- note: {n}" for n in report.notes]
    title = (PAPER_LAYOUTS[comp.table].title + " (the paper's layout)" if comp.table
             else "Results")
    lines += ["", f"## {title}", "", comp.markdown(report.name), ""]
    if comp.table and not comp.average_complete:
        lines += ["The average is over the evaluated sets only: not every column of the "
                  "paper's table was evaluated, so it has no paper counterpart.", ""]
    lines += ["## Per test set", ""]
    rows = [[s.name, s.task, str(len(s.images)), f"{s.psnr:.2f}", f"{s.ssim:.4f}",
             format_score(comp.paper.get(s.name)),
             format_diff((s.psnr, s.ssim), comp.paper.get(s.name)),
             f"{s.seconds_per_image:.3f}"] for s in report.sets]
    lines.append(markdown_table(
        ["Test set", "Task", "Images", "PSNR", "SSIM", f"{comp.paper_row} (paper)",
         "Difference", "s/image"], rows))
    if comp.table:
        lines += ["", f"## The paper's {comp.table.split('_')[0].replace('table', 'Table ')}, "
                  "every method (for reference)", "", paper_reference_table(comp.table)]
    return "\n".join(lines) + "\n"


def write_report(report: EvalReport, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write results.md, results.csv, results.json and per_image.csv into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f for k, f in (("markdown", "results.md"), ("csv", "results.csv"),
                                     ("json", "results.json"), ("per_image", "per_image.csv"))}
    data = report_dict(report)
    paths["json"].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(_markdown(report), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["set", "task", "images", "psnr", "ssim", "paper_psnr", "paper_ssim",
                         "diff_psnr", "diff_ssim"])
        entries = list(data["sets"].items()) + [("average", {**data["average"], "task": "",
                                                             "images": ""})]
        for set_name, entry in entries:
            paper, diff = entry["paper"] or {}, entry["diff"] or {}
            writer.writerow([set_name, entry["task"], entry["images"],
                             _fmt(entry["psnr"], 4), _fmt(entry["ssim"], 5),
                             _fmt(paper.get("psnr"), 2), _fmt(paper.get("ssim"), 3),
                             _fmt(diff.get("psnr"), 4), _fmt(diff.get("ssim"), 5)])
    with paths["per_image"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["set", "task", "image", "psnr", "ssim", "seconds"])
        for s in report.sets:
            for r in s.images:
                writer.writerow([s.name, s.task, r.image, _fmt(r.psnr, 4), _fmt(r.ssim, 5),
                                 f"{r.seconds:.4f}"])
    return paths


def _fmt(value, digits: int) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


# ------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    """The options of ``scripts/eval.py``."""
    parser = argparse.ArgumentParser(
        prog="eval.py",
        description="Evaluate a DFPIR/Restormer checkpoint on the test sets of a config and "
                    "write the paper's tables (Markdown, CSV, JSON) and per-image metrics.",
    )
    parser.add_argument("--config", help="experiment YAML (default: the built-in defaults)")
    parser.add_argument("--ckpt", required=True,
                        help="checkpoint: ours, a released DFPIR one or a released Restormer one")
    parser.add_argument("--out", help="results folder (default: results/eval_<ckpt name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override, e.g. model.gamma=0.7 "
                        "(repeatable)")
    parser.add_argument("--tile", type=int, help="tile size for memory-bounded inference "
                        "(0 = whole image, the protocol)")
    parser.add_argument("--tile-overlap", type=int, help="overlap between tiles in pixels")
    parser.add_argument("--save-images", action="store_true", help="also write restored images")
    parser.add_argument("--quantize", action="store_true",
                        help="round outputs to uint8 before the metrics (as saved images)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None,
                        help="autocast precision (default: eval.amp if the config has it, else "
                        "none, the protocol)")
    parser.add_argument("--max-images", type=int, default=None,
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
    return parser


def cli_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` entries followed by those the dedicated flags stand for (flags win)."""
    overrides = list(args.overrides)
    if args.tile is not None:
        overrides.append(f"eval.tile={args.tile}")
    if getattr(args, "tile_overlap", None) is not None:
        overrides.append(f"eval.tile_overlap={args.tile_overlap}")
    if getattr(args, "save_images", False):
        overrides.append("eval.save_images=true")
    if getattr(args, "quantize", False):
        overrides.append("eval.quantize=true")
    if args.device is not None:
        overrides.append(f"eval.device={json.dumps(args.device)}")
    return overrides


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it per test)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_cli_logging() -> None:
    """Show the package's notes and warnings (bare messages on stderr) for the command-line
    scripts, unless the application has configured logging itself."""
    package = logging.getLogger("dfpir")
    if package.handlers or logging.getLogger().handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    package.addHandler(handler)
    package.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/eval.py``: returns the exit status (0 ok, 2 for a usage or data error)."""
    args = build_parser().parse_args(argv)
    setup_cli_logging()
    out = Path(args.out or Path("results") / f"eval_{Path(args.ckpt).stem}")
    try:
        overrides = cli_overrides(args)
        cfg = load_config(args.config, overrides)
        amp = args.amp or getattr(cfg.eval, "amp", "none")
        max_images = (args.max_images if args.max_images is not None
                      else getattr(cfg.eval, "max_images", 0))
        report = evaluate(
            cfg, args.ckpt, overrides=overrides, max_images=max_images,
            amp=None if amp == "none" else amp, paper_table=args.paper_table,
            paper_row=args.paper_row,
            image_dir=out / "images" if cfg.eval.save_images else None,
            name=args.name or out.name, progress=not args.no_progress,
        )
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paths = write_report(report, out)
    print(report.comparison.markdown(report.name))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}"
          + (f" and {out / 'images'}/" if cfg.eval.save_images else ""))
    return 0
