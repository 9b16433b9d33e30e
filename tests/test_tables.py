"""The paper's tables: reference numbers, the paper's layouts, and the Table 3 ranking."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dfpir.cli.rank import main
from dfpir.eval.tables import (
    choose_paper_table,
    format_diff,
    format_score,
    load_run,
    paper_scores,
    rank_runs,
    results_table,
    table3_report,
)
from dfpir.models import DFPIRConfig

TABLE1_SETS = ["sots", "rain100l", "cbsd68_s15", "cbsd68_s25", "cbsd68_s50"]


def test_paper_numbers():
    dfpir = paper_scores("table1_three_task", "DFPIR")
    assert dfpir["sots"] == (31.87, 0.980) and dfpir["average"] == (32.88, 0.919)
    assert paper_scores("table2_five_task", "DFPIR")["lol"] == (23.82, 0.843)
    assert paper_scores("table1_three_task", "Restormer")["rain100l"] == (36.55, 0.975)
    with pytest.raises(KeyError, match="rows"):
        paper_scores("table1_three_task", "Nope")


def test_choose_paper_table():
    assert choose_paper_table(TABLE1_SETS) == "table1_three_task"
    assert choose_paper_table(["sots", "gopro"]) == "table2_five_task"
    assert choose_paper_table(["sots", "rain100l"]) == "table1_three_task"
    assert choose_paper_table(["sots", "rain100l"], ["derain", "deblur"]) == "table2_five_task"
    assert choose_paper_table(["builtin_derain"]) is None


def test_complete_table1_layout_and_average():
    ours = {name: (30.0 + i, 0.9) for i, name in enumerate(reversed(TABLE1_SETS))}
    ours["builtin_dehaze"] = (20.0, 0.5)
    table = results_table(ours, "table1_three_task")
    assert table.columns == [*TABLE1_SETS, "builtin_dehaze", "average"]  # the paper's order
    assert table.average_complete
    assert table.ours["average"] == pytest.approx((32.0, 0.9))  # the built-in set is left out
    assert table.paper["average"] == (32.88, 0.919)
    rows = table.rows()
    assert rows[1][0] == "DFPIR (paper)" and rows[1][1] == "31.87/0.980"
    assert rows[1][6] == "-"  # no paper number for the built-in set
    assert rows[2][-1] == "-0.88/-0.019"
    assert "| Method | Dehazing SOTS |" in table.markdown()


def test_partial_layout_has_no_paper_average():
    table = results_table({"rain100l": (37.0, 0.97), "cbsd68_s25": (31.0, 0.88)},
                          "table1_three_task", "Restormer")
    assert not table.average_complete
    assert table.ours["average"] == pytest.approx((34.0, 0.925))
    assert table.paper["average"] is None and table.paper["rain100l"] == (36.55, 0.975)
    only_builtin = results_table({"builtin_derain": (25.0, 0.8)}, None)
    assert only_builtin.rows()[1][1:] == ["-", "-"]


def test_formatting():
    assert format_score((31.8712, 0.97951)) == "31.87/0.980"
    assert format_score(None) == "-"
    assert format_diff((32.0, 0.92), (31.87, 0.98)) == "+0.13/-0.060"
    assert format_diff(None, (31.87, 0.98)) == "-"


def write_run(root: Path, name: str, average: tuple[float, float] | None,
              table: str = "table1_three_task", **model) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    config = dataclasses.asdict(DFPIRConfig(**model))
    data = {
        "name": name,
        "model": config,
        "paper_table": table,
        "average": {"psnr": average[0] if average else None,
                    "ssim": average[1] if average else None, "complete": average is not None},
    }
    (folder / "results.json").write_text(json.dumps(data))
    return folder


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return [
        write_run(tmp_path, "restormer", (31.9, 0.910), ca=False, dgcpm=False, caapm=False),
        write_run(tmp_path, "row_a", (32.3, 0.913), ca=True, dgcpm=False, caapm=False),
        write_run(tmp_path, "row_b", (32.6, 0.916), ca=True, dgcpm=False, caapm=True),
        write_run(tmp_path, "row_c", (32.5, 0.911), dgcpm=True, caapm=False),
        write_run(tmp_path, "dfpir", (32.9, 0.920)),
        write_run(tmp_path, "gamma07", (32.7, 0.918), gamma=0.7),
        write_run(tmp_path, "gamma06", (32.6, 0.918), gamma=0.6),
        write_run(tmp_path, "dgcpm_ca", (32.6, 0.918), ca=True, caapm=False),
        write_run(tmp_path, "five_task", (30.6, 0.91), table="table2_five_task"),
        write_run(tmp_path, "partial", None),
    ]


def test_rank_runs_into_table3(runs):
    ranked = rank_runs([load_run(r) for r in runs])
    assert [(row, run.name) for row, run in ranked["a"]] == [
        ("baseline", "restormer"), ("a", "row_a"), ("b", "row_b"), ("c", "row_c"),
        ("DFPIR", "dfpir")]
    assert [(gamma, run.name) for gamma, run in ranked["b"]] == [(0.7, "gamma07"),
                                                                 (0.9, "dfpir")]
    unmatched = {run.name: why for run, why in ranked["unmatched"]}
    assert set(unmatched) == {"gamma06", "dgcpm_ca", "five_task", "partial"}
    assert "not a three-task" in unmatched["five_task"]
    assert "incomplete" in unmatched["partial"]


def test_table3_report_and_cli(runs, tmp_path, capsys):
    text = table3_report([load_run(r) for r in runs])
    assert "## Table 3 (a)" in text and "## Table 3 (b)" in text
    line = next(s for s in text.splitlines() if "| dfpir |" in s and s.startswith("| DFPIR"))
    assert "32.90/0.920" in line and "32.88/0.919" in line and "+0.02/+0.001" in line
    gamma_05 = next(s for s in text.splitlines() if s.startswith("| 0.5 |"))
    assert "| - | 32.67/0.913 |" in gamma_05  # no run at gamma 0.5: only the paper's number
    assert "## Runs not matching any Table 3 row" in text and "gamma06" in text
    out = tmp_path / "table3.md"
    assert main([str(r) for r in runs] + ["--out", str(out)]) == 0
    assert out.read_text() == text == capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_rank_script(runs):
    """The script is a thin wrapper: same output as the library."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "rank.py"
    done = subprocess.run([sys.executable, str(script), *map(str, runs[:2])],
                          capture_output=True, text=True, check=True)
    assert done.stdout == table3_report([load_run(r) for r in runs[:2]])
