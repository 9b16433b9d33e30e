"""The paper's result tables: reference numbers, the paper's layouts, and Table 3 rankings.

``paper_tables.yaml`` (packaged with dfpir) holds the numbers of the paper's Tables 1-3. This
module lays our results out the way the paper does, with the paper's number and our difference
next to each of ours, and ranks several evaluation runs (the ablations) into Table 3 (a), the
module study, and Table 3 (b), the top-K ratio gamma.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from ..errors import ResultsError
from ..models import TABLE3_ROWS, DFPIRConfig

__all__ = [
    "NO_VALUE",
    "PAPER_LAYOUTS",
    "RESULTS_JSON",
    "RunSummary",
    "TableLayout",
    "choose_paper_table",
    "format_diff",
    "format_score",
    "load_paper_tables",
    "load_run",
    "markdown_table",
    "paper_scores",
    "rank_runs",
    "results_table",
    "table3_report",
]

NO_VALUE = "-"
RESULTS_JSON = "results.json"  # the file an evaluation folder's summary is read from
Score = tuple[float, float]  # (PSNR dB, SSIM)


@dataclass(frozen=True)
class TableLayout:
    """A paper table's columns (our test-set names) and their headers, in the paper's order."""

    key: str
    title: str
    columns: tuple[str, ...]
    headers: tuple[str, ...]


PAPER_LAYOUTS: dict[str, TableLayout] = {
    "table1_three_task": TableLayout(
        "table1_three_task",
        "Table 1: three degradations (dehazing, deraining, denoising)",
        ("sots", "rain100l", "cbsd68_s15", "cbsd68_s25", "cbsd68_s50"),
        ("Dehazing SOTS", "Deraining Rain100L", "Denoising CBSD68 σ=15",
         "Denoising CBSD68 σ=25", "Denoising CBSD68 σ=50"),
    ),
    "table2_five_task": TableLayout(
        "table2_five_task",
        "Table 2: five degradations (dehazing, deraining, denoising, deblurring, low-light)",
        ("sots", "rain100l", "cbsd68_s25", "gopro", "lol"),
        ("Dehazing SOTS", "Deraining Rain100L", "Denoising CBSD68 σ=25", "Deblurring GoPro",
         "Low-light LOL"),
    ),
}


@functools.lru_cache(maxsize=1)
def load_paper_tables() -> dict:
    """The parsed ``dfpir/resources/paper_tables.yaml`` (the paper's Tables 1-3)."""
    text = resources.files("dfpir").joinpath("resources/paper_tables.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def paper_scores(table: str, row: str) -> dict[str, Score]:
    """Column name -> (PSNR, SSIM) of one row of Table 1 or 2 (including ``average``).

    Raises ``KeyError`` naming the valid tables or rows.
    """
    tables = load_paper_tables()
    if table not in PAPER_LAYOUTS:
        raise KeyError(f"unknown paper table {table!r}; expected one of {list(PAPER_LAYOUTS)}")
    rows = tables[table]["rows"]
    if row not in rows:
        raise KeyError(f"{table} has no row {row!r}; rows: {', '.join(rows)}")
    columns = tables[table]["columns"]
    return {col: (float(v[0]), float(v[1])) for col, v in zip(columns, rows[row], strict=True)}


def choose_paper_table(set_names: Iterable[str], train_tasks: Iterable[str] = ()) -> str | None:
    """The paper table a set of test-set names belongs to: Table 1 (three tasks) or Table 2
    (five tasks); by the training tasks (deblur/low-light mean five) when the names alone do
    not tell (e.g. only ``sots`` and ``rain100l``); ``None`` when no name is in either."""
    names = set(set_names)
    in1 = names & set(PAPER_LAYOUTS["table1_three_task"].columns)
    in2 = names & set(PAPER_LAYOUTS["table2_five_task"].columns)
    if not in1 and not in2:
        return None
    if in1 - in2:
        return "table1_three_task"
    if in2 - in1:
        return "table2_five_task"
    if set(train_tasks) & {"deblur", "lowlight"}:
        return "table2_five_task"
    return "table1_three_task"


def _finite(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def format_score(score: Score | None) -> str:
    """``"31.87/0.980"`` (PSNR to 0.01 dB, SSIM to 0.001 as the paper), ``"-"`` for none."""
    if score is None or not _finite(score[0]):
        return NO_VALUE
    return f"{score[0]:.2f}/{score[1]:.3f}"


def format_diff(ours: Score | None, paper: Score | None) -> str:
    """Ours minus the paper, signed: ``"+0.23/-0.004"``; ``"-"`` when either is missing."""
    if ours is None or paper is None or not _finite(ours[0]) or math.isinf(ours[0]):
        return NO_VALUE
    return f"{ours[0] - paper[0]:+.2f}/{ours[1] - paper[1]:+.3f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _mean(scores: Sequence[Score]) -> Score:
    return (sum(s[0] for s in scores) / len(scores), sum(s[1] for s in scores) / len(scores))


@dataclass
class ComparisonTable:
    """Our scores beside the paper's, in the paper's column order (see ``results_table``)."""

    table: str | None  # the paper table used, or None
    paper_row: str
    columns: list[str]  # test-set names, plus "average"
    headers: list[str]
    ours: dict[str, Score]  # column -> ours (average included)
    paper: dict[str, Score | None]  # column -> the paper's, None where it has no number
    average_complete: bool  # the average covers exactly the paper table's columns

    def rows(self, label: str = "Ours") -> list[list[str]]:
        """Three rows: ours, the paper's and the difference."""
        return [
            [label] + [format_score(self.ours.get(c)) for c in self.columns],
            [f"{self.paper_row} (paper)"] + [format_score(self.paper.get(c)) for c in self.columns],
            ["Difference"] + [format_diff(self.ours.get(c), self.paper.get(c))
                              for c in self.columns],
        ]

    def markdown(self, label: str = "Ours") -> str:
        """The three rows under the paper's column headers, as Markdown."""
        return markdown_table(["Method", *self.headers], self.rows(label))


def results_table(scores: Mapping[str, Score], table: str | None, paper_row: str = "DFPIR"
                  ) -> ComparisonTable:
    """Lay out per-test-set scores (name -> (PSNR, SSIM)) as the paper's ``table``.

    Columns follow the paper's order; test sets the paper table does not have (e.g. the
    built-in ``builtin_*`` sets) come after, with ``"-"`` as the paper's number. The average
    is over the paper table's columns when all were evaluated (then it is comparable with the
    paper's average), else over every evaluated set, with no paper average.
    """
    layout = PAPER_LAYOUTS.get(table) if table else None
    paper_all = paper_scores(table, paper_row) if layout else {}
    known = [c for c in layout.columns if c in scores] if layout else []
    headers = {c: h for c, h in zip(layout.columns, layout.headers, strict=True)} if layout else {}
    extra = [name for name in scores if name not in known]
    columns = known + extra
    complete = bool(layout) and len(known) == len(layout.columns)
    ours = {c: scores[c] for c in columns}
    paper: dict[str, Score | None] = {c: paper_all.get(c) for c in columns}
    if columns:
        ours["average"] = _mean([scores[c] for c in (known if complete else columns)])
        paper["average"] = paper_all.get("average") if complete else None
    return ComparisonTable(
        table=table if layout else None,
        paper_row=paper_row,
        columns=columns + (["average"] if columns else []),
        headers=[headers.get(c, c) for c in columns] + (["Average"] if columns else []),
        ours=ours,
        paper=paper,
        average_complete=complete,
    )


def paper_reference_table(table: str) -> str:
    """The paper's whole Table 1 or 2 (every method) as Markdown, for reference."""
    layout = PAPER_LAYOUTS[table]
    rows = load_paper_tables()[table]["rows"]
    body = [[name] + [format_score((v[0], v[1])) for v in values] for name, values in rows.items()]
    return markdown_table(["Method", *layout.headers, "Average"], body)


# ------------------------------------------------------------------ Table 3: ablation ranking


@dataclass
class RunSummary:
    """What Table 3 needs from one evaluation folder's ``results.json``."""

    name: str
    path: str
    model: dict
    table: str | None
    average: Score | None  # the paper-comparable three-task average, if the run has one
    notes: list[str] = field(default_factory=list)

    @property
    def switches(self) -> tuple[bool, str | None]:
        """(dgcpm, attention) with attention 'caapm', 'ca' or None, as ``DFPIRConfig``."""
        dgcpm = bool(self.model.get("dgcpm", True))
        caapm = bool(self.model.get("caapm", True))
        ca = bool(self.model.get("ca", False))
        return dgcpm, "caapm" if caapm else ("ca" if ca else None)

    @property
    def gamma(self) -> float:
        """The CAAPM top-K ratio (only meaningful with CAAPM on)."""
        return float(self.model.get("gamma", 0.9))


def load_run(folder: str | os.PathLike) -> RunSummary:
    """Read an evaluation folder (or its ``results.json`` directly); raises ``ValueError``
    naming the file when it is missing or not an evaluation result."""
    path = Path(folder)
    file = path / RESULTS_JSON if path.is_dir() else path
    if not path.exists():
        raise ResultsError(f"{path} does not exist; expected an evaluation folder (written by "
                           "dfpir eval) or its results.json")
    if not file.is_file():
        raise ResultsError(f"no {RESULTS_JSON} in {path}: is it a folder written by scripts/eval.py?")
    try:
        data = json.loads(file.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # not JSON, or not text at all
        what = f"valid JSON: {err}" if isinstance(err, json.JSONDecodeError) else "UTF-8 text"
        raise ResultsError(f"{file} is not {what}") from None
    if not isinstance(data, dict) or "model" not in data or "average" not in data:
        raise ResultsError(f"{file} is not an evaluation result (no 'model' or 'average' entry)")
    average = data.get("average") or {}
    score = None
    if average.get("complete") and _finite(average.get("psnr")):
        score = (float(average["psnr"]), float(average["ssim"]))
    name = data.get("name") or (path.name if path.is_dir() else path.parent.name)
    options = data.get("eval") or {}
    notes = []
    if options.get("max_images"):
        notes.append(f"first {options['max_images']} images per set")
    if options.get("tile"):
        notes.append(f"tiled {options['tile']}px")
    if options.get("quantize"):
        notes.append("quantised")
    return RunSummary(name=name, path=str(path), model=dict(data["model"] or {}),
                      table=data.get("paper_table"), average=score, notes=notes)


_DEFAULT_ARCH = DFPIRConfig()
_ARCH_FIELDS = ("dim", "num_blocks", "num_refinement_blocks", "heads", "ffn_expansion",
                "learnable_dgm")


def _run_notes(run: RunSummary) -> str:
    """Architecture fields that differ from the paper's (a tiny ablation, say) and departures
    from the protocol (a subset of images, tiling, quantisation), or ''."""
    diffs = [f"{k}={run.model[k]}" for k in _ARCH_FIELDS
             if k in run.model and run.model[k] != getattr(_DEFAULT_ARCH, k)]
    return ", ".join(diffs + run.notes)


def _gamma_text(gamma: float) -> str:
    return f"{gamma:.1f}" if round(gamma, 1) == gamma else f"{gamma:g}"


def _row_of(run: RunSummary) -> str | None:
    for row, (ca, dgcpm, caapm) in TABLE3_ROWS.items():
        attention = "caapm" if caapm else ("ca" if ca else None)
        if run.switches == (dgcpm, attention):
            return row
    return None


def _why_unmatched(run: RunSummary) -> str | None:
    if run.table != "table1_three_task":
        return f"not a three-task evaluation (paper table: {run.table or 'none'})"
    if run.average is None:
        return "the three-task average is incomplete (not every Table 1 test set was evaluated)"
    return None


def rank_runs(runs: Sequence[RunSummary]) -> dict[str, list]:
    """Sort runs into Table 3 (a) rows, Table 3 (b) gammas and the unmatched ones.

    Returns ``{"a": [(row, run)], "b": [(gamma, run)], "unmatched": [(run, reason)]}``. A run
    is in (a) when its switches match a row (and, for rows with CAAPM, gamma is the paper's
    0.9); it is in (b) when it is the full DFPIR at one of the paper's gammas; a run can be in
    both (the paper's DFPIR at 0.9 is). Switch matching follows ``DFPIRConfig``: CAAPM implies
    the cross-attention, so ``ca`` only matters without CAAPM.
    """
    tables = load_paper_tables()
    gammas = [float(g) for g in tables["table3b_gamma"]["rows"]]
    out: dict[str, list] = {"a": [], "b": [], "unmatched": []}
    for run in runs:
        reason = _why_unmatched(run)
        if reason:
            out["unmatched"].append((run, reason))
            continue
        row = _row_of(run)
        placed = False
        uses_gamma = run.switches[1] == "caapm"
        if row is not None and (not uses_gamma or math.isclose(run.gamma, 0.9)):
            out["a"].append((row, run))
            placed = True
        if row == "DFPIR":
            match = next((g for g in gammas if math.isclose(g, run.gamma)), None)
            if match is not None:
                out["b"].append((match, run))
                placed = True
        if not placed:
            dgcpm, attention = run.switches
            what = f"dgcpm={dgcpm}, attention={attention or 'none'}, gamma={run.gamma:g}"
            out["unmatched"].append((run, f"no Table 3 row has {what}"))
    order = list(TABLE3_ROWS)
    out["a"].sort(key=lambda item: (order.index(item[0]), -item[1].average[0]))
    out["b"].sort(key=lambda item: (item[0], -item[1].average[0]))
    return out


def table3_report(runs: Sequence[RunSummary]) -> str:
    """Markdown: Table 3 (a) and (b) with ours, the paper's and the difference; all runs
    ranked by average PSNR; and the runs that fit no row."""
    tables = load_paper_tables()
    paper_a = tables["table3a_components"]["rows"]
    paper_b = {float(g): v for g, v in tables["table3b_gamma"]["rows"].items()}
    ranked = rank_runs(runs)
    mark = {True: "✓", False: ""}
    lines = ["## Table 3 (a): modules (three-task average PSNR/SSIM)", ""]
    body = []
    by_row: dict[str, list[RunSummary]] = {}
    for row, run in ranked["a"]:
        by_row.setdefault(row, []).append(run)
    for row, (ca, dgcpm, caapm) in TABLE3_ROWS.items():
        paper = tuple(paper_a[row][3])
        flags = [mark[ca], mark[dgcpm], mark[caapm]]
        for run in by_row.get(row) or [None]:
            ours = run.average if run else None
            body.append([row, *flags, format_score(ours), format_score(paper),
                         format_diff(ours, paper), run.name if run else NO_VALUE,
                         _run_notes(run) if run else ""])
    lines.append(markdown_table(
        ["Row", "CA", "DGCPM", "CAAPM", "Ours", "Paper", "Difference", "Run", "Notes"],
        body))
    lines += ["", "## Table 3 (b): top-K ratio γ of CAAPM (three-task average PSNR/SSIM)", ""]
    by_gamma: dict[float, list[RunSummary]] = {}
    for gamma, run in ranked["b"]:
        by_gamma.setdefault(gamma, []).append(run)
    body = []
    for gamma, values in paper_b.items():
        paper = (float(values[0]), float(values[1]))
        for run in by_gamma.get(gamma) or [None]:
            ours = run.average if run else None
            body.append([_gamma_text(gamma), format_score(ours), format_score(paper),
                         format_diff(ours, paper), run.name if run else NO_VALUE,
                         _run_notes(run) if run else ""])
    lines.append(markdown_table(["γ", "Ours", "Paper", "Difference", "Run", "Notes"],
                                body))
    scored = sorted((r for r in runs if r.average is not None and r.table == "table1_three_task"),
                    key=lambda r: -r.average[0])
    if scored:
        lines += ["", "## All runs by three-task average PSNR", ""]
        lines.append(markdown_table(
            ["Rank", "Run", "Average", "DGCPM", "Attention", "γ"],
            [[str(i + 1), r.name, format_score(r.average), mark[r.switches[0]],
              r.switches[1] or "none",
              _gamma_text(r.gamma) if r.switches[1] == "caapm" else NO_VALUE]
             for i, r in enumerate(scored)]))
    if ranked["unmatched"]:
        lines += ["", "## Runs not matching any Table 3 row", ""]
        lines.append(markdown_table(
            ["Run", "Average", "Reason", "Folder"],
            [[r.name, format_score(r.average), why, r.path] for r, why in ranked["unmatched"]]))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ command line
