"""Writing an evaluation's results folder: ``results.md`` (the paper's table layout beside
ours), ``results.csv``, ``results.json`` (read by ``scripts/rank.py``) and ``per_image.csv``."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models import DFPIRConfig
from ..outputs import replaced
from .blind import BlindReport, PromptMatrix, blind_markdown, write_blind_files, write_prompt_matrix
from .loop import SetResult
from .tables import (
    PAPER_LAYOUTS,
    ComparisonTable,
    format_diff,
    format_score,
    markdown_table,
    paper_reference_table,
)

__all__ = ["EvalReport", "report_dict", "write_report"]


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
    blind: BlindReport | None = None  # with a degradation classifier (dfpir.blind)
    prompt_matrix: PromptMatrix | None = None  # with prompt_matrix=True



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
        **({"blind": report.blind.to_dict()} if report.blind is not None else {}),
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
    if report.blind is not None:
        lines += ["", blind_markdown(report.blind).rstrip()]
    if comp.table:
        lines += ["", f"## The paper's {comp.table.split('_')[0].replace('table', 'Table ')}, "
                  "every method (for reference)", "", paper_reference_table(comp.table)]
    return "\n".join(lines) + "\n"


#: The files of a results folder, by kind: what ``write_report`` writes (and replaces).
REPORT_FILES = {"markdown": "results.md", "csv": "results.csv", "json": "results.json",
                "per_image": "per_image.csv"}


def write_report(report: EvalReport, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write results.md, results.csv, results.json and per_image.csv into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f for k, f in REPORT_FILES.items()}
    data = report_dict(report)
    with replaced(paths["json"]) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    with replaced(paths["markdown"]) as tmp:
        tmp.write_text(_markdown(report), encoding="utf-8")
    with (replaced(paths["csv"]) as tmp,
          tmp.open("w", newline="", encoding="utf-8") as handle):
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
    with (replaced(paths["per_image"]) as tmp,
          tmp.open("w", newline="", encoding="utf-8") as handle):
        writer = csv.writer(handle)
        writer.writerow(["set", "task", "image", "psnr", "ssim", "seconds"])
        for s in report.sets:
            for r in s.images:
                writer.writerow([s.name, s.task, r.image, _fmt(r.psnr, 4), _fmt(r.ssim, 5),
                                 f"{r.seconds:.4f}"])
    if report.blind is not None:
        paths.update(write_blind_files(report.blind, out))
    if report.prompt_matrix is not None:
        paths.update(write_prompt_matrix(report.prompt_matrix, out, report.name))
    return paths


def _fmt(value, digits: int) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


