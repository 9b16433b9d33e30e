"""Training: configs, determinism, resume, guards, export, torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dfpir.config import ConfigError, ExperimentConfig, load_config, save_config
from dfpir.models import DFPIR
from dfpir.models.checkpoint import load_weights
from dfpir.train import NonFiniteLossError, RunDirError, Trainer, TrainingInterrupted
from dfpir.train.sampler import EpochSampler

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "model.dim=8", "model.num_blocks=[1, 1, 1, 1]", "model.num_refinement_blocks=1",
    "model.heads=[1, 2, 2, 4]",
    "data.builtin.tasks=[derain, dehaze]", "data.builtin.train_images=[astronaut]",
    "data.builtin.test_images=[coffee]", "data.builtin.repeat=4", "data.builtin.test_max_side=32",
    "train.stages=[{name: a, epochs: 2, lr: 0.001, patch_size: 16, batch_size: 2}]",
    "train.save_every_iters=0", "train.sample_images=1", "train.log_every=1",
    "classifier.enabled=false",  # the demo's classifier has its own tests (test_blind.py)
]


def tiny_cfg(*extra: str) -> ExperimentConfig:
    return load_config(ROOT / "configs" / "demo.yaml", TINY + list(extra))


def run(cfg: ExperimentConfig, run_dir: Path, **kw) -> Trainer:
    trainer = Trainer(cfg, run_dir, **kw)
    trainer.run()
    return trainer


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


# ------------------------------------------------------------------ configs


def test_config_inheritance_overrides_and_round_trip(tmp_path):
    cfg = load_config(ROOT / "configs" / "ablations" / "table3b_gamma_0.7.yaml",
                      ["train.bf16=true"])
    assert cfg.model.gamma == 0.7 and cfg.name == "table3b_gamma_0.7"
    assert cfg.train.stages[1].patch_size == 192  # from the base
    assert cfg.train.bf16 is True
    save_config(cfg, tmp_path / "effective.yaml")
    again = load_config(tmp_path / "effective.yaml")
    assert again == cfg


def test_paper_recipe_is_the_default():
    cfg = load_config(ROOT / "configs" / "five_task.yaml")
    main, finetune = cfg.train.stages
    assert (main.epochs, main.lr, main.patch_size, main.batch_size) == (80, 1e-4, 128, 5)
    assert (finetune.epochs, finetune.lr, finetune.patch_size, finetune.batch_size) == (
        5, 1e-5, 192, 3)
    assert cfg.train.loss == "l1" and cfg.train.betas == [0.9, 0.999]
    repeats = {t.task: t.repeat for t in cfg.data.train_tasks}
    assert repeats == {"denoise_15": 3, "denoise_25": 3, "denoise_50": 3, "derain": 80,
                       "dehaze": 1, "deblur": 30, "lowlight": 60}


def test_misspelled_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": str(ROOT / "configs" / "demo.yaml"),
                                    "model": {"gama": 0.5}}))
    with pytest.raises(ConfigError, match=r"model\.gama: unknown key; did you mean 'gamma'\?"
                                          r" \(set in .*bad\.yaml\)"):
        load_config(path)
    with pytest.raises(ConfigError, match="train.bf16: expected true or false"):
        load_config(ROOT / "configs" / "demo.yaml", ["train.bf16=maybe"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


# ------------------------------------------------------------------ the loop


def test_sampler_is_reproducible_sharded_and_resumable():
    full = EpochSampler(10, seed=1, epoch=0).indices()
    assert sorted(full) == list(range(10))
    assert full == EpochSampler(10, seed=1, epoch=0).indices()
    assert full != EpochSampler(10, seed=1, epoch=1).indices()
    shards = [EpochSampler(10, 1, 0, rank=r, world=3).indices() for r in range(3)]
    assert all(len(s) == 4 for s in shards) and set(sum(shards, [])) == set(range(10))
    assert list(EpochSampler(10, 1, 0, start=4)) == full[4:]


def test_same_seed_same_losses(tmp_path, monkeypatch):
    losses: list[list[float]] = [[], []]
    original = Trainer._step

    for i in range(2):
        def record(self, *args, _i=i):
            loss = original(self, *args)
            losses[_i].append(loss)
            return loss

        monkeypatch.setattr(Trainer, "_step", record)
        run(tiny_cfg(), tmp_path / f"run{i}")
    assert len(losses[0]) == 8
    assert losses[0] == losses[1]


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = tiny_cfg()
    full = weights(run(cfg, tmp_path / "full"))

    original = Trainer._step
    calls = {"n": 0}

    def stop_after_five(self, *args):
        loss = original(self, *args)
        calls["n"] += 1
        if calls["n"] == 5:  # mid-way through the second epoch
            self.stops.requested = True
        return loss

    monkeypatch.setattr(Trainer, "_step", stop_after_five)
    with pytest.raises(TrainingInterrupted, match="global step 5; continue with --resume"):
        run(cfg, tmp_path / "split")
    monkeypatch.setattr(Trainer, "_step", original)
    ckpt = torch.load(tmp_path / "split" / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["progress"]["global_step"] == 5
    resumed = weights(run(cfg, tmp_path / "split", resume=True))
    for key, value in full.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)


def test_existing_run_is_not_overwritten(tmp_path):
    run(tiny_cfg("train.stages=[{name: a, epochs: 1, lr: 0.001, patch_size: 16, "
                 "batch_size: 2, max_iters: 1}]"), tmp_path)
    with pytest.raises(RunDirError, match="--resume"):
        Trainer(tiny_cfg(), tmp_path)
    with pytest.raises(RunDirError, match="no checkpoint"):
        Trainer(tiny_cfg(), tmp_path / "empty", resume=True)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_cfg("train.save_every_iters=1")
    trainer = Trainer(cfg, tmp_path)
    forward = trainer.net.forward
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += trainer.model.training  # not the checks before each save (eval mode)
        out = forward(*args, **kwargs)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(trainer.net, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"iteration 3 .*\['dehaze', 'derain'\]|"
                                                 r"iteration 3 .*batch tasks"):
        trainer.run()
    ckpt = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["progress"]["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_export_loads_through_the_model_loader(tmp_path):
    trainer = run(tiny_cfg("train.stages=[{name: a, epochs: 1, lr: 0.001, patch_size: 16, "
                           "batch_size: 2, max_iters: 2}]"), tmp_path)
    model = DFPIR(trainer.cfg.model)
    assert load_weights(model, tmp_path / "export" / "release_layout.pth") == "dfpir_release"
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value.cpu()), key
    assert load_weights(DFPIR(trainer.cfg.model), tmp_path / "checkpoints" / "latest.pt") == "ours"
    from safetensors.torch import load_file

    assert set(load_file(tmp_path / "export" / "weights.safetensors")) == set(
        model.state_dict())
    assert (tmp_path / "final_results.md").read_text().count("builtin_") == 2
    assert (tmp_path / "comparison.png").stat().st_size > 1000


def test_torchrun_two_processes_gloo(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    save_config(tiny_cfg("train.stages=[{name: a, epochs: 1, lr: 0.001, patch_size: 16, "
                         "batch_size: 2}]", "train.save_every_epochs=1"), cfg)
    (tmp_path / "tmp").mkdir()  # torchrun's torchelastic_* folder: in the test's own
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(tmp_path / "tmp"))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29517", str(ROOT / "scripts" / "train.py"), "--config", str(cfg),
         "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pt"))
    # 8 samples / 2 ranks / batch 2 = 2 iterations per rank per epoch
    state = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["progress"]["global_step"] == 2
    assert "stage1_epoch0001.pt" in ckpts
    assert not list((tmp_path / "run" / "checkpoints").glob(".*.tmp*"))


# ------------------------------------------------------------------ the release's options


def test_cosine_t_max_is_independent_of_the_epochs_and_batch_is_logged(tmp_path, caplog):
    """t_max_epochs 4 over 2 epochs stops the cosine half-way (lr0 / 2), as the release's
    T_max=--epochs does when it trains fewer epochs; the start logs the effective batch."""
    import logging

    cfg = tiny_cfg("train.scheduler_step=epoch", "train.eta_min=0.0", "train.val_every=0",
                   "train.stages=[{name: a, epochs: 2, lr: 0.001, patch_size: 16, batch_size: 2, "
                   "t_max_epochs: 4}]")
    with caplog.at_level(logging.INFO, logger="dfpir.train.trainer"):
        trainer = run(cfg, tmp_path / "run")
    assert trainer.schedule.optimizer.param_groups[0]["lr"] == pytest.approx(0.001 / 2)
    assert "1 process(es) x batch 2 = effective global batch 2, lr 0.001" in caplog.text


def test_global_batch_is_split_over_processes():
    from dfpir.train.stages import process_batch_size

    assert process_batch_size(6, 3, is_global=False) == 6  # the release: per process
    assert process_batch_size(6, 3, is_global=True) == 2
    with pytest.raises(ConfigError, match="cannot be split evenly over 2 processes"):
        process_batch_size(5, 2, is_global=True)


def test_select_on_test_scores_and_saves_by_the_release_rule(tmp_path):
    import json

    from dfpir.train.validator import release_selects

    assert release_selects(30.0, 30.00005, 1e-4) and not release_selects(29.99, 30.0, 1e-4)
    cfg = tiny_cfg("train.val_every=0", "train.select_on_test=true",
                   "train.select_every_iters=2", "train.select_tolerance_iters=0.5",
                   "train.select_tolerance_epochs=0.0")
    run(cfg, tmp_path / "run")
    records = [json.loads(line) for line in
               (tmp_path / "run" / "test_selection.jsonl").read_text().splitlines()]
    # 4 iterations per epoch: mid-epoch at iteration 2, and at the end of each epoch
    assert [(r["epoch"], r["iteration"], r["trigger"]) for r in records] == [
        (0, 2, "iterations"), (1, 0, "epoch"), (1, 2, "iterations"), (2, 0, "epoch")]
    best = float("-inf")
    for r in records:
        assert r["saved"] == (r["mean_psnr"] > best - r["tolerance"])
        best = max(best, r["mean_psnr"])
        assert r["best_psnr"] == best and set(r["sets"]) == {"builtin_derain", "builtin_dehaze"}
    assert (tmp_path / "run" / "checkpoints" / "test_selected.pt").is_file()
