"""Issue 22, "nothing lost, nothing silent": a disk full before the first checkpoint advises
what can work, and a corrupt training image found mid-run is named and skipped."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data_fixtures import clean_image
from test_train_safety import short_cfg

from dfpir.data.errors import ImageReadError
from dfpir.data.io import image_header, write_image
from dfpir.data.scan import find_pairs
from dfpir.data.trainset import TaskTrainSet
from dfpir.train import CheckpointWriteError, RunDirError, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_disk_full_before_the_first_checkpoint_advises_a_fresh_start(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    trainer = Trainer(short_cfg(1), run_dir)

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointWriteError) as info:
        trainer.save("latest")
    monkeypatch.undo()
    trainer.close()
    message = str(info.value)
    assert "disk (or quota) is full" in message and "--overwrite" in message
    assert "continue with --resume" not in message  # there is no latest.pt to resume from
    assert not (run_dir / "checkpoints" / "latest.pt").exists()

    # the rerun the message suggests is refused only with the same advice, never --resume
    with pytest.raises(RunDirError) as rerun:
        Trainer(short_cfg(1), run_dir)
    assert "--overwrite" in str(rerun.value) and "pass --resume" not in str(rerun.value)


def truncated_jpeg(path: Path, seed: int) -> None:
    """A JPEG cut in half: its header reads (so the check before training passes it), its
    pixels do not."""
    write_image(path, clean_image(seed, 40, 40))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_corrupt_training_image_is_named_counted_and_skipped(tmp_path, caplog):
    for index in range(3):
        write_image(tmp_path / f"{index}.png", clean_image(index, 40, 40))
    truncated_jpeg(tmp_path / "cut.jpg", 9)
    image_header(tmp_path / "cut.jpg")  # the pre-check lets it through
    pairs = find_pairs("denoise_15", [str(tmp_path)])
    dataset = TaskTrainSet("denoise_15", pairs, patch_size=16)
    bad = next(i for i, pair in enumerate(pairs) if pair.clean.endswith("cut.jpg"))
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # the same file again: skipped again, logged once
            degraded, clean, task = dataset.sample(bad, rng)
            assert clean.shape == (3, 16, 16) and task == "denoise_15"
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "cut.jpg" in warnings[0] and "1 unreadable" in warnings[0]

    # a task with no readable image at all ends the run with an error naming a file
    only_bad = TaskTrainSet("denoise_15", [pairs[bad]], patch_size=16)
    with pytest.raises(ImageReadError, match="no readable training image.*cut.jpg"):
        only_bad.sample(0, rng)


def test_error_from_a_data_worker_prints_without_the_workers_traceback(capsys):
    import argparse

    from torch.utils.data import DataLoader, Dataset

    from dfpir.cli.common import run_cli

    class Unreadable(Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, index: int):
            raise ImageReadError("task 'derain': no readable training image; cut.jpg")

    def load(_args) -> int:
        next(iter(DataLoader(Unreadable(), num_workers=1)))
        return 0

    assert run_cli(argparse.ArgumentParser(), load, []) == 2
    err = capsys.readouterr().err
    assert err == "error: task 'derain': no readable training image; cut.jpg\n", err


def test_tiny_run_goes_on_past_a_corrupt_training_image(tmp_path, caplog):
    from test_train import tiny_cfg

    for index in range(3):
        write_image(tmp_path / "noisy" / f"{index}.png", clean_image(index, 40, 40))
    truncated_jpeg(tmp_path / "noisy" / "cut.jpg", 9)
    cfg = tiny_cfg("data.builtin.use_for_train=false", f"data.data_root={tmp_path}",
                   "data.train_tasks=[{task: denoise_15, roots: [noisy], list_missing: scan, "
                   "repeat: 2}]", "data.num_workers=0", "train.val_every=0")
    with caplog.at_level(logging.WARNING):
        Trainer(cfg, tmp_path / "run").run()
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()  # the run finished
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "cut.jpg" in warnings[0], warnings
