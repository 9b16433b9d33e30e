"""Issue 22, class 3: every command checks where its results go before any work, with one
helper; a bad place is ``error:`` naming it, exit 2, nothing created."""

from __future__ import annotations

import errno
import os

import pytest

from dfpir.cli import main as dfpir
from dfpir.errors import OutputPlaceError
from dfpir.outputs import check_output_place

as_root = hasattr(os, "geteuid") and os.geteuid() == 0


def test_wrong_kind_under_a_file_and_nothing_created(tmp_path):
    afile = tmp_path / "taken.txt"
    afile.write_text("keep")
    with pytest.raises(OutputPlaceError, match="existing file"):
        check_output_place(afile, "dir", "--out")
    with pytest.raises(OutputPlaceError, match="is a folder"):
        check_output_place(tmp_path, "file", "--out")
    with pytest.raises(OutputPlaceError, match="is a file, so nothing"):
        check_output_place(afile / "deeper" / "x.md", "file", "--out")
    assert check_output_place(tmp_path / "new" / "folder", "dir", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.txt"]  # probe gone, no mkdir


@pytest.mark.skipif(as_root, reason="root writes into read-only folders")
def test_read_only_place(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputPlaceError, match="read-only"):
            check_output_place(locked / "out", "dir", "--out")
    finally:
        locked.chmod(0o700)


def test_full_disk_names_the_path(tmp_path, monkeypatch):
    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputPlaceError, match=r"--cache .*disk \(or quota\) is full"):
        check_output_place(tmp_path / "cache", "dir", "--cache")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["train", "--config", "configs/demo.yaml", "--run-dir", "{file}"],
    ["train", "--config", "configs/demo.yaml", "--run-dir", "{tmp}/run",
     "--set", "data.cache_dir={file}"],
    ["eval", "--config", "configs/demo.yaml", "--ckpt", "{missing}", "--out", "{file}"],
    ["export", "--ckpt", "{missing}", "--out", "{file}"],
    ["rank", "{tmp}", "--out", "{file}/table.md"],
    ["prepare", "--preset", "three_task", "--cache", "{file}"],
    ["export_prompts", "--encoder", "hashed", "--out", "{file}/p.pt"],
])
def test_every_command_checks_its_output_place_first(argv, tmp_path, capsys):
    afile = tmp_path / "taken"
    afile.write_text("keep")
    names = {"file": afile, "missing": tmp_path / "none.pt", "tmp": tmp_path}
    code = dfpir([a.format(**names) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "Traceback" not in err, err
    assert str(afile) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert afile.read_text() == "keep"


def test_app_port_in_use_or_out_of_range_is_an_error_and_leaves_no_folder(
        tmp_path, capsys, monkeypatch):
    """The app's port is checked before the model loads and before its results folder exists."""
    import socket
    import tempfile

    pytest.importorskip("gradio")
    from test_app import save_tiny

    from dfpir.cli.app import main as app_main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    ckpt = save_tiny(tmp_path / "tiny.pt")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert app_main(["--ckpt", str(ckpt), "--port", str(port), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --port") and "Traceback" not in err, err
    with pytest.raises(SystemExit) as stop:
        app_main(["--ckpt", str(ckpt), "--port", "99999"])
    assert stop.value.code == 2 and "--port" in capsys.readouterr().err
    assert list((tmp_path / "tmp").iterdir()) == []


def test_numeric_options_are_checked_by_their_parser(capsys):
    for argv in (["benchmark", "--size", "0"], ["benchmark", "--batch", "-1"],
                 ["eval", "--ckpt", "x.pt", "--max-images", "-1"]):
        with pytest.raises(SystemExit) as stop:
            dfpir(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "expected a whole number >= 1" in err, err


@pytest.mark.parametrize("setting, expected", [
    (["--set", "data.builtin.tasks=[]"], "data.builtin.tasks=[]"),
    (["--config", "{bad}"], "not UTF-8"),
])
def test_config_mistakes_are_errors_not_tracebacks(setting, expected, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    argv = ["train", "--config", "configs/demo.yaml", "--run-dir", str(tmp_path / "run"),
            *[a.format(bad=bad) for a in setting]]
    assert dfpir(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and expected in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


LONG = "n" * 300  # over every common file system's 255-byte name limit


@pytest.mark.parametrize("argv", [
    ["train", "--config", "configs/demo.yaml", "--run-dir", "{tmp}/" + LONG],
    ["train", "--config", "configs/demo.yaml", "--set", f"name={LONG}",
     "--set", "output_dir={tmp}"],
    ["train", "--config", "{tmp}/" + LONG],
    ["train", "--resume", "--run-dir", "{tmp}/" + LONG],
    ["eval", "--ckpt", "{tmp}/x.pt", "--out", "{tmp}/" + LONG + "/a"],
    ["eval", "--ckpt", "{tmp}/" + LONG],
    ["restore", "--ckpt", "{tmp}/x.pt", "-i", "{tmp}/" + LONG, "-d", "derain"],
    ["restore", "--ckpt", "{tmp}/x.pt", "-i", "docs/figures/demo_comparison.png", "-o",
     "{tmp}/" + LONG, "-d", "derain"],
    ["export", "--ckpt", "{tmp}/x.pt", "--out", "{tmp}/" + LONG],
])
def test_names_too_long_are_one_error_line(argv, tmp_path, capsys, monkeypatch):
    """A run name, --run-dir, --out or input longer than the file system allows: error:, exit
    2, nothing created (was an OSError traceback, errno 36)."""
    monkeypatch.chdir(tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [a.replace("{tmp}", str(tmp_path)).replace("configs/", f"{root}/configs/")
            .replace("docs/", f"{root}/docs/") for a in argv]
    assert dfpir(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("error: ") and "long" in err[-1], err
    assert "Traceback" not in "\n".join(err)
    assert list(tmp_path.iterdir()) == []


def test_check_room_refuses_a_result_the_disk_cannot_hold_in_units_that_show_it(
        tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from dfpir.outputs import check_room

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(1 << 30, 0, 12 * 1024))
    check_room(tmp_path / "small.onnx", 4096, "--onnx")  # fits
    with pytest.raises(OutputPlaceError) as refused:
        check_room(tmp_path / "model.onnx", 5 * 2**20, "--onnx")
    assert "--onnx" in str(refused.value) and "about 5.0 MiB will be written" in str(refused.value)
    assert "12.0 KiB is free" in str(refused.value)  # not "0.0 MiB"
