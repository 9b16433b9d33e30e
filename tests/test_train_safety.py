"""Runs that cannot be corrupted (issue 11): the run directory's lock, no poisoned checkpoints,
honest resume, signals, value checks at load, overwrite/temporaries/disk full."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_config
from test_train import ROOT, TINY, tiny_cfg

from dfpir.config import ConfigError, load_config, save_config
from dfpir.models import DFPIR
from dfpir.models.checkpoint import CheckpointError, load_weights
from dfpir.restore.inference import restore
from dfpir.train import (
    CheckpointWriteError,
    NonFiniteLossError,
    ResumeConfigError,
    RunDirError,
    RunLockedError,
    StopNow,
    Trainer,
    TrainingInterrupted,
    load_training_state,
)
from dfpir.train.rundir import LOCK_NAME, RunLock

pytestmark = pytest.mark.usefixtures("one_thread")

SHORT = "train.stages=[{name: a, epochs: 1, lr: 0.001, patch_size: 16, batch_size: 2, " \
        "max_iters: %d}]"


LR = "train.stages=[{name: a, epochs: 2, lr: %g, patch_size: 16, batch_size: 2}]"


def short_cfg(iters: int = 2, *extra: str):
    return tiny_cfg(SHORT % iters, *extra)


def train_script():
    from dfpir.cli.train import main

    return main


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def stopped_run(tmp_path: Path, stop_at: int, monkeypatch, *extra: str) -> Path:
    """A run of 8 iterations stopped after ``stop_at`` (``latest.pt`` there)."""
    original = Trainer._step
    calls = {"n": 0}

    def step(self, *args):
        loss = original(self, *args)
        calls["n"] += 1
        if calls["n"] == stop_at:
            self.stops.requested = True
        return loss

    monkeypatch.setattr(Trainer, "_step", step)
    with pytest.raises(TrainingInterrupted):
        Trainer(tiny_cfg(*extra), tmp_path).run()
    monkeypatch.setattr(Trainer, "_step", original)
    return tmp_path


# ------------------------------------------------------------------ 1. the lock


def test_a_locked_run_dir_refuses_a_second_process_and_a_stale_lock_is_taken_over(
        tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = RunLock(run_dir)
    holder.acquire()  # a live process (this one) holds it
    with pytest.raises(RunLockedError, match=rf"process {os.getpid()} on "
                                             rf"{socket.gethostname()}"):
        Trainer(short_cfg(), run_dir)
    status = train_script()(["--config", str(ROOT / "configs" / "demo.yaml"), "--run-dir",
                             str(run_dir)] + [f"--set={s}" for s in TINY])
    assert status == 2 and "is in use by process" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME]  # nothing else written
    holder.release()
    assert not run_dir.exists()  # the lock created the folder: released, nothing is left

    run_dir.mkdir()

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / LOCK_NAME).write_text(json.dumps({"pid": dead.pid,
                                                 "host": socket.gethostname()}))
    trainer = Trainer(short_cfg(), run_dir)  # the dead holder's lock is stale
    assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == os.getpid()
    trainer.run()
    assert not (run_dir / LOCK_NAME).exists()  # released at the end


# ------------------------------------------------------------------ 2. non-finite


def test_a_runaway_step_writes_no_checkpoint_and_names_the_last_good_one(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"after global step 1 .*No checkpoint was "
                                                 r"written yet .*--overwrite"):
        Trainer(tiny_cfg(LR % 1e6, "train.save_every_iters=1"),
                tmp_path / "a").run()
    assert not (tmp_path / "a" / "checkpoints" / "latest.pt").exists()

    # with a good checkpoint first: the message names it, and it stays as it was
    run_dir = tmp_path / "b"
    trainer = Trainer(tiny_cfg("train.save_every_iters=2"), run_dir)
    original = trainer._step

    def runaway(*args):
        if trainer.progress.global_step == 2:
            for group in trainer.schedule.optimizer.param_groups:
                group["lr"] = 1e6
        return original(*args)

    trainer._step = runaway
    with pytest.raises(NonFiniteLossError, match=r"last good checkpoint is .*latest\.pt "
                                                 r"\(global step 2\)"):
        trainer.run()
    state = load_training_state(run_dir / "checkpoints" / "latest.pt")
    assert state["progress"]["global_step"] == 2
    assert max(v.abs().max() for v in state["model"].values()) < 100


def test_non_finite_weights_are_refused_by_every_loader(tmp_path):
    model = DFPIR(tiny_config())
    state = model.state_dict()
    state["dgpb_level1.dgm.fc1.weight"][0, 0] = float("nan")
    state["output.weight"][0] = float("inf")
    torch.save({"model": state, "progress": {}}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"nan\.pt holds non-finite .* 2 parameter") as err:
        load_weights(DFPIR(tiny_config()), tmp_path / "nan.pt")  # eval, restore, export
    assert "dgpb_level1.dgm.fc1.weight" in str(err.value) and "output.weight" in str(err.value)
    with pytest.raises(CheckpointError, match="non-finite"):
        load_training_state(tmp_path / "nan.pt")  # --resume


# ------------------------------------------------------------------ 3. resume


def test_resume_keeps_the_stored_config_and_records_allowed_changes(tmp_path, monkeypatch):
    run_dir = stopped_run(tmp_path / "run", 3, monkeypatch)
    before = snapshot(run_dir)
    with pytest.raises(ResumeConfigError, match=r"train\.stages\[0\]\.lr: 0\.001 -> 0\.0005.*"
                                                r"--resume-with-changes"):
        Trainer(tiny_cfg(LR % 5e-4), run_dir, resume=True)
    with pytest.raises(ResumeConfigError, match="model.dim cannot change on a resume"):
        Trainer(tiny_cfg("model.dim=16"), run_dir, resume=True, resume_with_changes=True)
    assert snapshot(run_dir) == before  # failed resumes change nothing on disk

    trainer = Trainer(tiny_cfg(LR % 5e-4, "train.save_every_iters=2"),
                      run_dir, resume=True, resume_with_changes=True)
    trainer.run()
    assert trainer.schedule.optimizer.param_groups[0]["initial_lr"] == 5e-4  # the change is applied
    assert (run_dir / "config.yaml").read_bytes() == (tmp_path / "run" / "config.yaml"
                                                      ).read_bytes()
    (entry,) = yaml.safe_load((run_dir / "config_changes.yaml").read_text())
    assert entry["with_resume_with_changes"] and entry["resumed_at_global_step"] == 3
    assert entry["changes"] == {"train.save_every_iters": {"from": 0, "to": 2},
                                "train.stages[0].lr": {"from": 0.001, "to": 0.0005}}
    assert "time" in entry


# ------------------------------------------------------------------ 4. signals


def test_sigterm_saves_latest_and_exits_143_then_resume_finishes(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg.yaml"
    save_config(tiny_cfg("train.stages=[{name: a, epochs: 400, lr: 0.001, patch_size: 16, "
                         "batch_size: 2}]", "train.save_every_iters=1", "train.val_every=0"),
                cfg)
    run_dir = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--run-dir", str(run_dir)]
    proc = subprocess.Popen(command + ["--config", str(cfg)], env=env, stderr=subprocess.PIPE,
                            text=True)
    latest = run_dir / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 120
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "--resume" in err
    step = load_training_state(latest)["progress"]["global_step"]
    assert step >= 1
    assert not list(run_dir.glob("checkpoints/.*.tmp*")) and not (run_dir / LOCK_NAME).exists()
    # resuming (stored config, no --config) continues from there; SIGINT: 130
    original = Trainer._step

    def interrupt(self, *args):
        loss = original(self, *args)
        os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(Trainer, "_step", interrupt)
    assert train_script()(["--resume", "--run-dir", str(run_dir)]) == 130
    assert load_training_state(latest)["progress"]["global_step"] == step + 1


def test_second_signal_stops_at_once_and_a_signal_skips_validation(tmp_path, monkeypatch):
    run_dir = tmp_path / "a"
    trainer = Trainer(tiny_cfg("train.save_every_iters=1"), run_dir)
    original = trainer._step

    def interrupted_twice(*args):
        loss = original(*args)
        if trainer.progress.global_step == 2:
            for _ in range(2):  # the first saves at the next boundary, unless a second
                os.kill(os.getpid(), signal.SIGINT)  # one comes first (the loop lets the
                time.sleep(0.01)  # handler run in between: pending signals coalesce)
        return loss

    trainer._step = interrupted_twice
    with pytest.raises(StopNow) as stop:
        trainer.run()
    assert stop.value.exit_code == 130
    state = load_training_state(run_dir / "checkpoints" / "latest.pt")  # whole and readable
    assert state["progress"]["global_step"] == 2  # the third step never reached its save
    assert not list(run_dir.glob("checkpoints/.*.tmp*")) and not (run_dir / LOCK_NAME).exists()

    # a signal during a validation skips it, saves, and stops with 128 + the signal
    trainer = Trainer(tiny_cfg("train.val_every=1"), tmp_path / "b")
    import dfpir.train.validator as trainer_module  # the validations

    real_validate = trainer_module.validate

    def slow_validate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "validate", slow_validate)
    with pytest.raises(TrainingInterrupted, match="SIGTERM") as stop:
        trainer.run()
    assert stop.value.exit_code == 143
    state = load_training_state(tmp_path / "b" / "checkpoints" / "latest.pt")
    assert (state["progress"]["epoch"], state["progress"]["global_step"]) == (1, 4)


# ------------------------------------------------------------------ 5. values at load


def test_config_values_are_range_checked_at_load(tmp_path):
    demo = ROOT / "configs" / "demo.yaml"
    bad = {
        "train.stages=[{batch_size: -1}]": r"train\.stages\[0\]\.batch_size: batch_size must",
        "train.stages=[{epochs: 0}]": r"train\.stages: .*at least one stage with epochs > 0",
        "train.stages=[]": r"train\.stages: .*at least one stage",
        "train.stages=[{epochs: 1}, {lr: -1}]": r"train\.stages\[1\]\.lr: lr must be a positive number",
        "eval.tile=-5": r"eval\.tile: tile must be >= 0",
        "eval.tile=32": r"eval\.tile: tile \(32\) must be larger than tile_overlap \(32\)",
        "data.num_workers=-1": r"data\.num_workers: num_workers must be >= 0",
        "model.dim=7": r"model\.dim: dim must be even",
    }
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message + rf".*\(set in --set {override[:8]}"):
            load_config(demo, [override])
    with pytest.raises(ConfigError, match=r"train\.stages\[0\]: unknown key.*\(set in --set"):
        load_config(demo, ["train.stages[0].lr=1"])  # not in demo.yaml's train.stages
    path = tmp_path / "c.yaml"
    path.write_text(f"base: {demo}\ntrain:\n  stages: [{{epochs: 1, lr: 1e-3}}]\n"
                    "  weight_decay: 5e-2\n")
    cfg = load_config(path, ["train.eta_min=1e-6"])  # YAML 1.2 floats, in files and --set
    assert (cfg.train.stages[0].lr, cfg.train.weight_decay, cfg.train.eta_min) == (
        1e-3, 5e-2, 1e-6)
    path.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(path)
    path.write_text(f"base: {demo}\ntrain: {{bf16: true}}\nmodel: {{}}\ntrain: {{}}\n")
    with pytest.raises(ConfigError, match=r"'train' appears twice .*line 2"):
        load_config(path)
    # every stage is checked before the first starts: stage 2's batch exceeds the data
    stages = ("train.stages=[{name: a, epochs: 1, lr: 0.001, patch_size: 16, batch_size: 2}, "
              "{name: b, epochs: 1, lr: 0.001, patch_size: 16, batch_size: 99}]")
    with pytest.raises(ConfigError, match=r"train\.stages\[1\] \('b'\): 8 training samples"):
        Trainer(tiny_cfg(stages), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing left on disk
    with pytest.raises(ValueError, match="tile and overlap must be >= 0"):
        restore(DFPIR(tiny_config()).eval(), torch.rand(3, 16, 16), torch.randn(512), tile=-5)


# ------------------------------------------------------------------ 6. smaller


def test_overwrite_temporaries_disk_full_and_restart_before_first_checkpoint(
        tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    Trainer(tiny_cfg("train.save_every_epochs=1", "train.val_every=0"), run_dir).run()
    (run_dir / "notes.txt").write_text("mine")
    old_events = set(run_dir.glob("tensorboard/events.*"))
    assert (run_dir / "checkpoints" / "stage1_epoch0002.pt").exists() and old_events
    (run_dir / "checkpoints" / ".latest.pt.x1.tmp").write_bytes(b"half")  # earlier versions
    (run_dir / "checkpoints" / ".latest.x2.tmp.pt").write_bytes(b"half")
    (run_dir / "export").mkdir(exist_ok=True)
    (run_dir / "export" / ".weights.x3.tmp.safetensors").write_bytes(b"half")

    trainer = Trainer(short_cfg(1), run_dir, overwrite=True)
    assert (run_dir / "notes.txt").read_text() == "mine"  # not the trainer's: kept
    assert not list(run_dir.glob("checkpoints/*")) and not list(run_dir.glob("export/*"))
    assert not old_events & set(run_dir.glob("tensorboard/events.*"))

    # disk full while saving: a clear error, the previous latest.pt intact, no temporary
    trainer.save("latest")
    good = (run_dir / "checkpoints" / "latest.pt").read_bytes()

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointWriteError, match=r"disk \(or quota\) is full.*previous "
                                                   r"latest\.pt is intact.*--resume"):
        trainer.save("latest")
    monkeypatch.undo()
    trainer.close()
    assert (run_dir / "checkpoints" / "latest.pt").read_bytes() == good
    assert not list(run_dir.glob("checkpoints/.*.tmp*"))

    # a run killed before its first checkpoint: both messages say how to start it again
    (run_dir / "checkpoints" / "latest.pt").unlink()
    with pytest.raises(RunDirError, match="stopped before its first checkpoint.*--overwrite"):
        Trainer(short_cfg(1), run_dir, resume=True)
    with pytest.raises(RunDirError, match="before its first checkpoint.*--overwrite"):
        Trainer(short_cfg(1), run_dir)


def test_restore_files_goes_on_after_out_of_memory(tmp_path, monkeypatch):
    import numpy as np

    import dfpir.restore.files as restore_module
    from dfpir.data import write_image

    inputs = []
    for name in ("a.png", "b.png", "c.png"):
        write_image(tmp_path / name, np.zeros((16, 16, 3), np.uint8))
        inputs.append(tmp_path / name)
    real = restore_module.restore
    calls = {"n": 0}

    def second_fails(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:116] DefaultCPUAllocator: not "
                               "enough memory: you tried to allocate 9000000000 bytes.")
        return real(*args, **kwargs)

    monkeypatch.setattr(restore_module, "restore", second_fails)
    summary = restore_module.restore_files(
        DFPIR(tiny_config()).eval(), torch.randn(512), inputs,
        [tmp_path / "out" / p.name for p in inputs], device=torch.device("cpu"),
        progress=False)
    assert [p.name for p in summary.written] == ["a.png", "c.png"]
    assert summary.failed[0][0].name == "b.png" and "out of memory" in summary.failed[0][1]


def test_a_refused_start_leaves_no_empty_output_dir(tmp_path):
    """The run folder and the output_dir above it, made for the lock, go when the checks
    refuse the run (here: a data folder that is not there)."""
    from dfpir.data import DataError

    cfg = tiny_cfg("data.builtin.enabled=false", f"data.data_root={tmp_path / 'none'}",
                   "data.test_sets=[]",
                   "data.train_tasks=[{task: derain, roots: [Train/Derain]}]")
    run_dir = tmp_path / "out" / "deeper" / "run"
    with pytest.raises(DataError):
        Trainer(cfg, run_dir)
    assert list(tmp_path.iterdir()) == []
