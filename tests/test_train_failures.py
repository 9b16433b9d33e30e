"""Issue 22, "nothing lost, nothing silent": a disk full before the first checkpoint advises
what can work, and a corrupt training image found mid-run is named and skipped."""

from __future__ import annotations

import errno

import pytest
import torch
from test_train_safety import short_cfg

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
