"""A run can be followed from its folder: train.log holds what the console shows (validation
tables, progress lines with the loss named, the epoch of epochs and ETAs); TensorBoard holds
the gradient norm, the loss per task and the config."""

from __future__ import annotations

import io
import logging

import pytest
from test_train import tiny_cfg

from dfpir.train import Trainer
from dfpir.train.progress import StageProgress, duration

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_log_and_tensorboard_of_a_tiny_run(tmp_path):
    logging.getLogger("dfpir").setLevel(logging.INFO)  # as `dfpir train` sets it
    cfg = tiny_cfg("train.stages=[{name: a, epochs: 2, lr: 0.001, patch_size: 16, "
                   "batch_size: 2}, {name: b, epochs: 1, lr: 0.0001, patch_size: 16, "
                   "batch_size: 2}]", "train.progress_every_s=0.001")
    Trainer(cfg, tmp_path / "run").run()
    text = (tmp_path / "run" / "train.log").read_text()
    assert "validation at global step" in text and "builtin_derain" in text
    assert "final validation:" in text and "restored PSNR" in text
    progress = [line for line in text.splitlines() if "stage 1/2 a:" in line]
    assert progress and "ETA stage" in progress[-2] and "run " in progress[-2]
    assert any("loss " in line and "(minus PSNR, dB)" in line for line in progress)  # demo
    assert any("epoch 1/2" in line or "epoch 2/2" in line for line in progress)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"),
                              size_guidance={"tensors": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/grad_norm", "train/lr"} <= scalars
    assert {"train/loss_derain", "train/loss_dehaze"} <= scalars
    assert any("config" in tag for tag in events.Tags()["tensors"])


def test_plain_lines_carry_the_stage_and_run_eta():
    clock = {"t": 0.0}
    stream = io.StringIO()
    logged: list[str] = []
    bar = StageProgress(100, 0, "stage 1/2 main", every_s=10.0, stream=stream,
                        clock=lambda: clock["t"], log=logged.append,
                        later=lambda per_it: 300 * per_it)  # a later stage of 300 steps' work
    for _ in range(20):
        clock["t"] += 1.0  # 1 s a step
        bar.update(1)
    bar.set_postfix(loss="0.1 (l1)", epoch="1/2")
    bar.close()
    last = stream.getvalue().strip().splitlines()[-1]
    assert last.startswith("stage 1/2 main: 20/100 it (20%), 1.00 it/s, loss 0.1 (l1)")
    assert "ETA stage 1m20s" in last and "run 6m20s" in last  # 80 s left + 300 s later
    assert logged[-1] == last
    assert duration(3 * 86400 + 4 * 3600) == "3d04h" and duration(59) == "59s"


def test_a_stage_that_ends_where_its_last_line_was_says_it_once():
    """A stop right after a line: close() does not repeat that count (it once did, with other
    numbers beside it)."""
    clock = {"t": 0.0}
    stream = io.StringIO()
    bar = StageProgress(100, 0, "main", every_s=10.0, stream=stream, clock=lambda: clock["t"])
    bar.set_postfix(loss="0.1 (l1)")
    for _ in range(10):
        clock["t"] += 1.0
        bar.update(1)  # a line at 10/100
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("main: 10/100 it") and "loss 0.1" in lines[0]
