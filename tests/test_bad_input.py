"""Bad input, as a careless or hostile user gives it, gets one ``error:`` line naming the thing
and what was expected, exit status 2, no traceback and nothing new on disk: the cases of the
hostile re-run (issue 31) that once ended otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dfpir.cli import main
from dfpir.data import write_image

ROOT = Path(__file__).resolve().parent.parent
DEMO = str(ROOT / "configs" / "demo.yaml")


@pytest.fixture
def place(tmp_path, monkeypatch) -> Path:
    """A folder with a photo, a looping link pair and a junk checkpoint; the cwd."""
    write_image(tmp_path / "a.png", np.zeros((16, 16, 3), np.uint8))
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    (tmp_path / "junk.pt").write_bytes(b"hello, this is no checkpoint\n")
    (tmp_path / "cfg_dir").mkdir()
    (tmp_path / "bad.yaml").write_text("train:\n  lr: [1, 2\n  x: 3\n")
    (tmp_path / "G" / "seq" / "blur").mkdir(parents=True)
    (tmp_path / "afile.txt").write_text("x")
    os.symlink("nowhere", tmp_path / "dangling")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text("my own notes\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


CASES = {
    "model dim 0": (["train", "--config", DEMO, "--set", "model.dim=0", "--run-dir", "r"],
                    "dim must be positive, got 0"),
    "model dim negative": (["train", "--config", DEMO, "--set", "model.dim=-8"],
                           "dim must be positive, got -8"),
    "zero heads": (["train", "--config", DEMO, "--set", "model.heads=[0,1,1,1]"],
                   "heads positive at every level"),
    "negative ffn": (["train", "--config", DEMO, "--set", "model.ffn_expansion=-1"],
                     "ffn_expansion must be a number > 0"),
    "input loops": (["restore", "-i", "loop1", "--ckpt", "junk.pt", "-d", "derain"],
                    "input loop1 is a symbolic link that loops"),
    "checkpoint loops": (["restore", "-i", "a.png", "--ckpt", "loop1", "-d", "derain"],
                         "checkpoint loop1 is a symbolic link that loops"),
    "junk checkpoint": (["restore", "-i", "a.png", "--ckpt", "junk.pt", "-d", "derain",
                         "-o", "o"], "not a torch.save file (KeyError"),
    "negative onnx threads": (["restore", "-i", "a.png", "--onnx", "x.onnx", "--threads", "-3"],
                              "--threads"),
    "empty --out": (["restore", "-i", "a.png", "-o", "", "--ckpt", "junk.pt", "-d", "derain"],
                    "--out is empty"),
    "empty --input": (["restore", "-i", "", "--ckpt", "junk.pt", "-d", "derain"],
                      "--input is empty"),
    "--out a link to nothing": (["restore", "-i", "a.png", "-o", "dangling", "--ckpt",
                                 "junk.pt", "-d", "derain"], "dangling is a symbolic link to "
                                "nothing"),
    "odd compile dim": (["benchmark_compile", "--modes", "none", "--dim", "7"],
                        "--dim: dim must be even"),
    "a mode twice": (["benchmark_compile", "--modes", "none", "none"], "names a mode twice"),
    "torchrun bad nproc": (["torchrun", "--nproc_per_node", "abc", "a.png"], "nproc_per_node"),
    "torchrun no script": (["torchrun", "--nproc_per_node", "2", "nope.py"],
                           "the training script nope.py does not exist"),
    "export --out with --onnx": (["export", "--ckpt", "junk.pt", "--task", "derain", "--onnx",
                                  "x.onnx", "--out", "e"], "--out is the folder of a whole"),
    "export --task alone": (["export", "--ckpt", "junk.pt", "--task", "derain", "--out", "e"],
                            "--task picks the prompt of a per-task export"),
    "config in the run dir": (["train", "--config", "cfg_dir/c.yaml", "--run-dir", "cfg_dir"],
                              None),
    "a run dir holding only a config.yaml": (["train", "--config", DEMO, "--run-dir", "mine"],
                                             "holds a config.yaml but nothing else of a run"),
    "broken yaml": (["train", "--config", "bad.yaml"], "at line 3, column 4"),
    "data root a file": (["prepare", "--check", "--config", DEMO, "--data-root", "afile.txt"],
                         "data root afile.txt is a file"),
    "flatten into itself": (["prepare", "--flatten-gopro", "G", "--into", "G/flat"],
                            "inside the GoPro folder"),
    "flatten a missing folder": (["prepare", "--flatten-gopro", "nope", "--into", "flat"],
                                 "GoPro folder nope does not exist"),
    "rank a missing folder": (["rank", "nope"], "nope does not exist"),
    "empty sentence": (["export_prompts", "--encoder", "hashed", "--sentence", " ",
                        "--out", "p.pt"], "--sentence is empty"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_error_line(name, place, capsys):
    argv, expected = CASES[name]
    if name == "config in the run dir":
        (place / "cfg_dir" / "c.yaml").write_text(f"base: {DEMO}\n")
        expected = "lies in the run directory cfg_dir"
    before = sorted(p.relative_to(place) for p in place.rglob("*"))
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors: "dfpir restore: error: ..."
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "run folder:" not in capsys.readouterr().out  # said only once the run is there
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err
    assert sorted(p.relative_to(place) for p in place.rglob("*")) == before


def test_a_flag_is_named_as_the_origin_of_its_value():
    from dfpir.config import load_config
    from dfpir.config.experiment import FlagOverride
    from dfpir.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\(set in --tile 16\)"):
        load_config(DEMO, [FlagOverride("eval.tile=16", "--tile 16")])


def test_a_folders_links_that_lead_nowhere_are_named(place, caplog):
    from dfpir.restore.files import collect_inputs

    with caplog.at_level("INFO", logger="dfpir"):
        assert collect_inputs(place) == [place / "a.png"]
    assert "3 entr(ies) of" in caplog.text and "dangling, loop1, loop2" in caplog.text


def test_rank_never_writes_over_the_results_it_reads(tmp_path, capsys):
    import json

    results = tmp_path / "ev" / "results.json"
    results.parent.mkdir()
    results.write_text(json.dumps({"model": {}, "average": {}}))
    before = results.read_bytes()
    assert main(["rank", str(tmp_path / "ev"), "--out", str(results), "--overwrite"]) == 2
    assert "is one of the results it ranks" in capsys.readouterr().err
    assert results.read_bytes() == before


def test_export_prompts_embeds_a_repeated_sentence_once(tmp_path, capsys):
    import torch

    out = tmp_path / "p.pt"
    assert main(["export_prompts", "--encoder", "hashed", "--sentence", "x", "--sentence", "x",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: 1 --sentence value(s) repeat" in printed
    count = int(printed.split("wrote ")[1].split()[0])
    table = torch.load(out, weights_only=True)
    assert count == len(table["sentences"] if isinstance(table, dict) and "sentences" in table
                        else table)
