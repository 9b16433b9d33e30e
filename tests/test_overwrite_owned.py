"""Issue 22, class 2: ``--overwrite`` deletes only the files a training wrote."""

from __future__ import annotations

import yaml

from dfpir.train.rundir import clear_owned_files


def test_overwrite_spares_a_users_checkpoint_and_notes(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stages = [{"name": "warmup"}, {"name": "main"}]
    (run / "config.yaml").write_text(yaml.safe_dump({"train": {"stages": stages}}))
    ours = ["latest.pt", "best.pt", "stage1_epoch0002.pt", "stage1_warmup.pt", "stage2_main.pt"]
    mine = ["my_backup.pt", "stage3_main.pt", "latest.pt.bak", "stage1_epoch2.pt"]
    for name in ours + mine:
        (run / "checkpoints" / name).write_bytes(b"x")
    (run / "notes.txt").write_text("mine")
    removed = clear_owned_files(run)
    assert sorted(p.name for p in removed) == sorted(ours + ["config.yaml"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(mine)
    assert (run / "notes.txt").read_text() == "mine"


def test_overwrite_without_a_readable_config_keeps_named_stage_checkpoints(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_bytes(b"\xff\xfe not yaml")
    for name in ("latest.pt", "stage1_warmup.pt"):
        (run / "checkpoints" / name).write_bytes(b"x")
    clear_owned_files(run)
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["stage1_warmup.pt"]


def test_a_run_name_is_a_name_not_a_path(tmp_path, capsys):
    """Issue 22, class 5: ``--set name=../../x`` would write the run outside output_dir."""
    from dfpir.cli import main as dfpir

    for bad in ("../../x", "a/b", ".."):
        code = dfpir(["train", "--config", "configs/demo.yaml", "--set",
                      f"output_dir={tmp_path / 'runs'}", "--set", f"name={bad}"])
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "plain name" in err and "--set" in err, err
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_overwrite_that_fails_before_a_checkpoint_puts_the_old_run_back(tmp_path, monkeypatch):
    """A finished run under ``--overwrite`` is only set aside: a new run that dies at its
    first batch (a corrupt image, say) leaves the old run as it was; the user's file stays."""
    import pytest
    from test_train import tiny_cfg

    from dfpir.train import Trainer

    run_dir = tmp_path / "run"
    Trainer(tiny_cfg("train.val_every=0"), run_dir).run()
    (run_dir / "checkpoints" / "my_backup.pt").write_bytes(b"mine")
    before = {p.relative_to(run_dir): p.read_bytes()
              for p in run_dir.rglob("*") if p.is_file() and "tensorboard" not in p.parts}
    events = sorted(p.name for p in (run_dir / "tensorboard").iterdir())

    def broken(*_args, **_kwargs):
        raise OSError("image file is truncated")

    trainer = Trainer(tiny_cfg("train.val_every=0"), run_dir, overwrite=True)
    assert not (run_dir / "checkpoints" / "latest.pt").exists()
    monkeypatch.setattr(trainer, "_run_stage", broken)
    with pytest.raises(OSError, match="truncated"):
        trainer.run()
    after = {p.relative_to(run_dir): p.read_bytes()
             for p in run_dir.rglob("*") if p.is_file() and "tensorboard" not in p.parts}
    assert after == before
    # the failed attempt's own event file is gone: TensorBoard shows the old run alone
    assert sorted(p.name for p in (run_dir / "tensorboard").iterdir()) == events

    # and once the new run has its first checkpoint, the old one's files are gone
    trainer = Trainer(tiny_cfg("train.val_every=0"), run_dir, overwrite=True)
    trainer.save("latest")
    trainer.close()
    assert not (run_dir / ".overwritten").exists()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["latest.pt",
                                                                           "my_backup.pt"]


def test_resume_of_a_finished_run_says_so_and_does_nothing(tmp_path, capsys):
    from test_train import tiny_cfg

    from dfpir.cli import main as dfpir
    from dfpir.train import Trainer

    run_dir = tmp_path / "run"
    Trainer(tiny_cfg("train.val_every=0"), run_dir).run()
    files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in run_dir.rglob("*") if p.is_file()}
    assert dfpir(["train", "--resume", "--run-dir", str(run_dir)]) == 0
    assert "had finished" in capsys.readouterr().out
    assert {p: (p.stat().st_mtime_ns, p.read_bytes())
            for p in run_dir.rglob("*") if p.is_file()} == files


def test_a_killed_overwrite_is_named_by_resume_and_by_a_new_run(tmp_path):
    """kill -9 during --overwrite, before the new run's first checkpoint: the old run is in
    .overwritten/; --resume and a new run say so (instead of "no checkpoint")."""
    import pytest
    from test_train import tiny_cfg

    from dfpir.train import RunDirError, Trainer

    run_dir = tmp_path / "run"
    Trainer(tiny_cfg("train.val_every=0"), run_dir).run()
    trainer = Trainer(tiny_cfg("train.val_every=0"), run_dir, overwrite=True)
    trainer.lock.release()  # as if killed: no close(), the old run stays aside
    assert (run_dir / ".overwritten" / "checkpoints" / "latest.pt").is_file()
    with pytest.raises(RunDirError, match=r"run it replaced is in .*\.overwritten"):
        Trainer(tiny_cfg("train.val_every=0"), run_dir, resume=True)
    with pytest.raises(RunDirError, match=r"already holds a run.*\.overwritten"):
        Trainer(tiny_cfg("train.val_every=0"), run_dir)


def test_a_failed_overwrite_names_the_run_put_back(tmp_path):
    from dfpir.train.checkpointer import Checkpointer

    aside = Checkpointer(tmp_path, set_aside=True)
    assert "put back" in aside.go_on() and "--resume" in aside.go_on()
    assert "does not exist" not in aside.last_good(0) and "put back" in aside.last_good(0)


def test_a_run_whose_end_failed_is_resumed_to_its_end_not_called_finished(tmp_path, capsys):
    """Stages done, but the final evaluation (or the classifier) never ended: no
    final_results.md. --resume does the end instead of saying the run had finished."""
    from test_train import tiny_cfg

    from dfpir.cli import main as dfpir
    from dfpir.train import Trainer

    run_dir = tmp_path / "run"
    Trainer(tiny_cfg("train.val_every=0"), run_dir).run()
    (run_dir / "final_results.md").unlink()
    assert dfpir(["train", "--resume", "--run-dir", str(run_dir)]) == 0
    assert "had finished" not in capsys.readouterr().out
    assert (run_dir / "final_results.md").is_file()


def test_a_folder_of_the_users_files_is_no_run_and_their_event_files_stay(tmp_path, capsys):
    """A run directory without config.yaml holding files at a run's names is refused, even
    with --overwrite; --overwrite of a real run keeps a user's file that only looks like a
    TensorBoard event file."""
    from test_train import tiny_cfg

    from dfpir.train import Trainer
    from dfpir.train.errors import RunDirError

    mine = tmp_path / "mine"
    (mine / "export").mkdir(parents=True)
    (mine / "export" / "weights.safetensors").write_bytes(b"my weights")
    for overwrite in (False, True):
        try:
            Trainer(tiny_cfg(), mine, overwrite=overwrite)
            raise AssertionError("not refused")
        except RunDirError as err:
            assert "is no run (no config.yaml)" in str(err) and "weights.safetensors" in str(err)
    assert sorted(p.name for p in mine.rglob("*")) == ["export", "weights.safetensors"]
    run_dir = tmp_path / "run"
    Trainer(tiny_cfg("train.val_every=0"), run_dir).run()
    (run_dir / "tensorboard" / "events.out.tfevents.123.mine").write_text("mine")
    removed = clear_owned_files(run_dir)
    assert any(p.name.startswith("events.out.tfevents.") for p in removed)
    assert (run_dir / "tensorboard" / "events.out.tfevents.123.mine").read_text() == "mine"


def test_resume_from_a_broken_latest_says_how_to_go_on(tmp_path, capsys):
    from test_train import tiny_cfg

    from dfpir.cli import main as dfpir
    from dfpir.train import Trainer

    run_dir = tmp_path / "run"
    Trainer(tiny_cfg("train.val_every=0"), run_dir).run()
    (run_dir / "final_results.md").unlink()
    (run_dir / "checkpoints" / "latest.pt").write_bytes(b"")
    capsys.readouterr()
    assert dfpir(["train", "--resume", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "is empty (0 bytes)" in err and "copy a whole stage checkpoint over it" in err
    assert "--overwrite" in err and err.count("\n") == 1
    assert dfpir(["train", "--resume", "--overwrite", "--run-dir", str(run_dir)]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_a_stop_while_the_classifier_trains_ends_it_and_resume_finishes(tmp_path, monkeypatch,
                                                                         capsys):
    """A stop asked while the classifier trains (after the last stage's save) ends the run at
    once, not after the classifier's steps; --resume then trains it and finishes the run."""
    import pytest
    from test_train import tiny_cfg

    import dfpir.blind.classifier as classifier
    from dfpir.cli import main as dfpir
    from dfpir.models.checkpoint import read_checkpoint
    from dfpir.train import Trainer, TrainingInterrupted

    run_dir = tmp_path / "run"
    cfg = tiny_cfg("train.val_every=0", "classifier.enabled=true", "classifier.steps=50",
                   "classifier.samples_per_task=4")
    trainer = Trainer(cfg, run_dir)
    real = classifier.sample_training_crops

    def then_stop(*args, **kwargs):
        crops = real(*args, **kwargs)
        trainer.stops.requested = True  # as SIGTERM's handler sets it
        return crops

    monkeypatch.setattr(classifier, "sample_training_crops", then_stop)
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    assert "classifier" not in read_checkpoint(run_dir / "checkpoints" / "latest.pt")
    monkeypatch.undo()
    capsys.readouterr()
    assert dfpir(["train", "--resume", "--run-dir", str(run_dir)]) == 0
    assert "classifier" in read_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert (run_dir / "final_results.md").is_file()


def test_the_resume_position_reads_as_the_progress_line():
    from dfpir.config import StageConfig
    from dfpir.train.stages import Progress, resume_position

    stages = [StageConfig(name="a", epochs=30)]
    assert resume_position(Progress(stage=0, epoch=3, iteration=2), stages) == (
        "at stage 1/1, epoch 4, after iteration 2 of it")
    assert resume_position(Progress(stage=1), stages).startswith("after its last stage")
    assert "past the stage's 3 epoch(s)" in resume_position(
        Progress(stage=0, epoch=5), [StageConfig(name="a", epochs=3)])


def test_a_resume_cannot_change_the_models_shapes(tmp_path, capsys):
    from test_train import tiny_cfg

    from dfpir.cli import main as dfpir
    from dfpir.train import Trainer

    run_dir = tmp_path / "run"
    Trainer(tiny_cfg("train.val_every=0"), run_dir).run()
    (run_dir / "final_results.md").unlink()
    capsys.readouterr()
    assert dfpir(["train", "--resume-with-changes", "--run-dir", str(run_dir), "--set",
                  "model.dim=16"]) == 2
    err = capsys.readouterr().err
    assert "model.dim cannot change on a resume" in err and err.count("\n") == 1, err


def test_a_resume_from_edited_channel_orders_warns_as_eval_does(tmp_path, caplog):
    import torch
    from test_train import tiny_cfg

    from dfpir.train import Trainer

    run_dir = tmp_path / "run"
    Trainer(tiny_cfg("train.val_every=0"), run_dir).run()
    latest = run_dir / "checkpoints" / "latest.pt"
    state = torch.load(latest, weights_only=True)
    orders = state["channel_orders"]["orders"]
    for block in orders:
        orders[block] = orders[block].flip(-1)  # every order reversed
    torch.save(state, latest)
    (run_dir / "final_results.md").unlink()
    with caplog.at_level("WARNING", logger="dfpir"):
        Trainer(None, run_dir, resume=True).close()
    assert "do not match its DGM weights" in caplog.text
