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
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin" / "results.json").write_bytes(b'{"model": "caf\xe9"}')
    monkeypatch.chdir(tmp_path)
    return tmp_path


CASES = {
    "crops larger than memory, before the run folder": (
        ["train", "--config", DEMO, "--run-dir", "r", "--set",
         "train.stages=[{name: a, epochs: 1, patch_size: 100000, batch_size: 8}]"],
        "for its images alone, more than this machine's"),
    "--resume of a file": (["train", "--resume", "--run-dir", "afile.txt"],
                           "--run-dir afile.txt is an existing file"),
    "a list entry keyed as in Python": (
        ["train", "--config", DEMO, "--set", "train.stages[0].epochs=2"],
        "a list entry is named with a dot: train.stages.0"),
    "an empty --set value": (["train", "--config", DEMO, "--set", "data.cache_dir="],
                             'write KEY="" for an empty string'),
    "a device named by its flag": (["train", "--config", DEMO, "--device", "tpu:9"],
                                   "(set in --device tpu:9)"),
    "an unknown built-in task, named with its key and --set": (
        ["train", "--config", DEMO, "--set", "data.builtin.tasks=[derain, snow]"],
        "data.builtin.tasks: unknown task 'snow'"),
    "a built-in task twice": (["train", "--config", DEMO, "--set",
                               "data.builtin.tasks=[derain, derain]"],
                              "data.builtin.tasks: names derain twice"),
    "a stage name too long for a file name, before training": (
        ["train", "--config", DEMO, "--run-dir", "r", "--set",
         "train.stages=[{name: " + "s" * 300 + ", epochs: 1}]"], "train.stages[0].name"),
    "--clip-weights that is no file": (
        ["export_prompts", "--out", "p.pt", "--clip-weights", "nowhere.pt"],
        "--clip-weights nowhere.pt does not exist"),
    "a run directory under a looping link": (
        ["train", "--config", DEMO, "--run-dir", "loop1/run"], "a symbolic link that loops"),
    "a classifier of one task, before training": (
        ["train", "--config", DEMO, "--set", "data.builtin.tasks=[derain]", "--run-dir", "r"],
        "the classifier needs at least two training tasks"),
    "a model larger than memory": (
        ["train", "--config", DEMO, "--set", "model.dim=100000000", "--run-dir", "r"],
        "out of memory"),
    "check_prompts --csv onto its checkpoint": (
        ["check_prompts", "--ckpt", "junk.pt", "--csv", "junk.pt", "--overwrite"],
        "is the --ckpt file junk.pt itself"),
    "rank of a results.json not in UTF-8": (["rank", "latin"], "is not UTF-8 text"),
    "benchmark_data with no samples": (["benchmark_data", "--samples", "-5"],
                                       "expected a whole number >= 1"),
    "a noise level that is no level": (["check_prompts", "--config", DEMO, "--levels", "-1"],
                                       "expected a finite number > 0"),
    "--link without --flatten-gopro": (["prepare", "--check", "--link"],
                                       "--link goes with --flatten-gopro"),
    "app on an address of another machine": (
        ["app", "--ckpt", "junk.pt", "--host", "192.0.2.1", "--port", "7999"],
        "--host 192.0.2.1 is not an address of this machine"),
    "model dim 0": (["train", "--config", DEMO, "--set", "model.dim=0", "--run-dir", "r"],
                    "dim must be positive, got 0"),
    "model dim negative": (["train", "--config", DEMO, "--set", "model.dim=-8"],
                           "dim must be positive, got -8"),
    "zero heads": (["train", "--config", DEMO, "--set", "model.heads=[0,1,1,1]"],
                   "heads must be positive at every level"),
    "a bad heads entry, named with its --set": (
        ["train", "--config", DEMO, "--set", "model.heads=[1,2,4,0]"],
        "model.heads: heads must be positive at every level, got [1, 2, 4, 0] (set in --set "
        "model.heads=[1,2,4,0])"),
    "heads that do not divide, named with its --set": (
        ["train", "--config", DEMO, "--set", "model.heads=[3,2,4,8]"],
        "model.heads: heads: level 1 has 16 channels, not divisible by 3 heads (set in --set"),
    "a classifier value, named with its --set": (
        ["train", "--config", DEMO, "--set", "classifier.threshold=1.5"],
        "(set in --set classifier.threshold=1.5)"),
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
    "torchrun nproc 0": (["torchrun", "--nproc-per-node", "0", "a.png"],
                         "--nproc-per-node must be a count >= 1"),
    "torchrun option it does not have": (["torchrun", "--bogus", "a.png"],
                                         "unrecognized arguments: --bogus"),
    "torchrun min > max nodes": (["torchrun", "--nnodes", "2:1", "a.png"],
                                 "min_nodes must be > 0 and <= max_nodes"),
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
    "a prompt table not named .pt": (["export_prompts", "--encoder", "hashed", "--out", "p.txt"],
                                      "expected a file name ending in .pt"),
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
    from dfpir.restore import collect_inputs

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
    link = tmp_path / "link.md"
    link.hardlink_to(results)  # another name of the input: the input still
    assert main(["rank", str(tmp_path / "ev"), "--out", str(link), "--overwrite"]) == 2
    assert results.read_bytes() == before
    # --overwrite of a file that is another name (a hard link) of a user's file replaces the
    # name, never writing through it
    mine = tmp_path / "mine.md"
    mine.write_text("my notes")
    table = tmp_path / "table.md"
    table.hardlink_to(mine)
    assert main(["rank", str(tmp_path / "ev"), "--out", str(table), "--overwrite"]) == 0
    assert mine.read_text() == "my notes" and "Table 3" in table.read_text()


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


def test_the_same_signal_twice_at_once_is_one_stop_request():
    # torchrun sends each worker its SIGTERM twice: that is no "stop at once" (a second
    # Ctrl-C is: tests/test_train_safety.py)
    import signal

    from dfpir.train.stop_requests import SAME_REQUEST_S, StopNow, StopRequests

    stops = StopRequests(distributed=False)
    stops.on_signal(signal.SIGTERM, None)
    stops.on_signal(signal.SIGTERM, None)  # the duplicate: no StopNow
    assert stops.requested
    stops._signalled_at -= SAME_REQUEST_S + 0.1  # a person sending it again later
    with pytest.raises(StopNow):
        stops.on_signal(signal.SIGTERM, None)
    other = StopRequests(distributed=False)
    other.on_signal(signal.SIGTERM, None)
    with pytest.raises(StopNow):  # Ctrl-C after a SIGTERM: another request
        other.on_signal(signal.SIGINT, None)
    # Ctrl-C to a torchrun group: each worker gets the terminal's SIGINT, then torchrun's
    # SIGTERM; one request (a second Ctrl-C is another: tests/test_train_safety.py)
    group = StopRequests(distributed=False)
    group.on_signal(signal.SIGINT, None)
    group.on_signal(signal.SIGTERM, None)
    assert group.requested and group.signal == signal.SIGINT


def test_results_files_replace_a_hard_link_instead_of_writing_through_it(tmp_path):
    from dfpir.outputs import replaced

    mine = tmp_path / "mine.json"
    mine.write_text("{}")
    result = tmp_path / "results.json"
    result.hardlink_to(mine)
    with replaced(result) as tmp:
        tmp.write_text('{"new": 1}')
    assert mine.read_text() == "{}" and result.read_text() == '{"new": 1}'
    assert oct(result.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with pytest.raises(RuntimeError), replaced(tmp_path / "failed.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.json", "results.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_flatten_gopro_names_the_folders_it_skips(tmp_path, capsys):
    write_image(tmp_path / "G" / "seq" / "blur" / "0.png", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "G" / "seq" / "sharp" / "0.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "G" / "notes").mkdir()
    assert main(["prepare", "--flatten-gopro", str(tmp_path / "G"), "--into",
                 str(tmp_path / "flat")]) == 0
    assert "note: 1 folder(s) of" in capsys.readouterr().out
