"""A command other than training stopped by Ctrl-C or SIGTERM (kill, a scheduler): one
``stopped`` line, 128 + the signal, no traceback, every file it wrote whole and counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import tiny_config

from dfpir.config import ExperimentConfig
from dfpir.data import read_image, write_image
from dfpir.models import DFPIR


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_folder_restore_stopped_midway_says_what_it_wrote(tmp_path, signum):
    cfg = ExperimentConfig(model=tiny_config())
    ckpt = tmp_path / "tiny.pt"
    torch.save({"model": DFPIR(cfg.model).state_dict(),
                "config": {"model": cfg.model.__dict__ | {}}}, ckpt)
    photos, out = tmp_path / "photos", tmp_path / "out"
    rng = np.random.default_rng(0)
    for i in range(400):
        write_image(photos / f"{i:03d}.png", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dfpir", "restore", "--ckpt", str(ckpt), "-i", str(photos),
         "-o", str(out), "-d", "derain", "--no-progress", "--set", "prompts.encoder=hashed",
         "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 120
        while len(list(out.glob("*.png"))) < 3 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "stopped (" in stderr.splitlines()[-1], stderr
    written = sorted(out.iterdir())
    assert 3 <= len(written) < 400 and all(p.suffix == ".png" for p in written)  # no temporary
    assert f"{len(written)} of 400 image(s) restored before the stop" in stderr, stderr
    for path in written:  # each whole
        assert read_image(path).shape == (48, 48, 3)


def test_ctrl_c_while_a_command_loads_is_a_stop_not_a_traceback(monkeypatch, capsys):
    import importlib

    import dfpir.cli as cli

    def interrupted(name, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    assert cli.main(["restore", "-i", "x.png"]) == 130
    assert capsys.readouterr().err == "stopped (Ctrl-C)\n"


def test_a_stop_just_after_a_result_is_written_still_counts_it(tmp_path, monkeypatch, caplog):
    """The stop lands between the file's rename into place and its count (what CI once saw:
    6 files on the disk, "5 ... written"): the count waits for the write, so they agree."""
    from dfpir.restore import files

    real = files.write_image

    def write_then_stop(*args, **kwargs):
        real(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # heard at the next instruction: before the count

    monkeypatch.setattr(files, "write_image", write_then_stop)
    source, target = tmp_path / "a.png", tmp_path / "out" / "a.png"
    write_image(source, np.zeros((8, 8, 3), dtype=np.uint8))
    with caplog.at_level("WARNING", logger="dfpir"), pytest.raises(KeyboardInterrupt):
        files.restore_paths(lambda _path, prepared: prepared.rgb, [source], [target],
                            progress=False)
    assert target.is_file()
    assert "1 of 1 image(s) restored before the stop, 1 file(s) written" in caplog.text


def test_stops_held_delivers_the_first_stop_once_after_the_block(monkeypatch):
    from dfpir.outputs import stops_held

    heard: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: heard.append(signum))
    try:
        with stops_held():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
            assert heard == []  # held
        assert heard == [signal.SIGTERM]
        with pytest.raises(OSError), stops_held():  # an error of the block: the stop still comes
            signal.raise_signal(signal.SIGTERM)
            raise OSError("disk full")
        assert heard == [signal.SIGTERM, signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
