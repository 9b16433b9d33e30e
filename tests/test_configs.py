"""Every YAML under configs/ loads and builds its model, datasets (on generated folders in the
release's layout) and optimizer, without training; every choice is checked when a config loads;
one converter, one task registry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from test_data_fixtures import (
    make_dehaze,
    make_denoise,
    make_derain_test,
    make_derain_train,
    make_gopro_flat,
    make_lol,
)

from dfpir.config import ConfigError, load_config
from dfpir.data import build_test_datasets, build_train_dataset, check_data, data_config_from_dict
from dfpir.data.tasks import TASKS
from dfpir.models import DFPIR
from dfpir.prompts import DEGRADATIONS
from dfpir.train.schedule import StageSchedule
from dfpir.train.stages import StageSizes

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A tiny copy of every folder the paper configs name (PromptIR's layout)."""
    root = tmp_path_factory.mktemp("data")
    make_denoise(root / "Train" / "Denoise", count=2)
    make_derain_train(root / "Train" / "Derain", count=2)
    make_dehaze(root / "Train" / "Dehaze", ids=1, per_id=2)
    make_gopro_flat(root / "Train" / "Deblur", count=2)
    make_lol(root / "Train" / "Lowlight", count=2)
    make_denoise(root / "test" / "denoise" / "bsd68", count=2)
    make_derain_test(root / "test" / "derain" / "Rain100L", count=2)
    make_dehaze(root / "test" / "dehaze", ids=1, per_id=1, test=True)
    make_gopro_flat(root / "test" / "deblur", count=2)
    make_lol(root / "test" / "lowlight", count=2)
    return root


def test_every_config_is_found():
    names = {p.name for p in CONFIGS}
    assert {"demo.yaml", "three_task.yaml", "five_task.yaml"} <= names and len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_builds_model_datasets_and_optimizer(path, data_root, one_thread):
    cfg = load_config(path, [f"data.data_root={data_root}", "prompts.encoder=hashed",
                             "data.builtin.test_max_side=32"])
    model = DFPIR(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    # the generated folders hold a few images, not the release lists' names: scan them
    cfg.data.train_tasks = [dataclasses.replace(t, list_missing="scan")
                            for t in cfg.data.train_tasks]
    report = check_data(cfg.data)
    assert report.ok, report.format()
    assert len(build_train_dataset(cfg.data)) > 0
    tests = build_test_datasets(cfg.data)
    assert tests and all(len(d) > 0 for d in tests.values())
    for stage in cfg.train.stages:
        # the trainer's own optimizer and scheduler code, on the built model
        schedule = StageSchedule(model, stage, cfg.train, 3, StageSizes.stage_iters(stage, 3))
        assert schedule.optimizer.param_groups[0]["lr"] == pytest.approx(stage.lr)
        assert schedule.scheduler is not None


@pytest.mark.parametrize(("override", "key"), [
    ("train.scheduler=cosin", "train.scheduler"),
    ("train.loss=l3", "train.loss"),
    ("train.loss_weighting=task", "train.loss_weighting"),
    ("train.scheduler_step=epochs", "train.scheduler_step"),
    ("eval.amp=fp8", "eval.amp"),
    ("prompts.encoder=clipp", "prompts.encoder"),
    ("prompts.style=short", "prompts.style"),
    ("prompts.clip_precision=fp64", "prompts.clip_precision"),
    ("train.device=gpu", "train.device"),
    ("eval.device=cuda:x", "eval.device"),
])
def test_every_choice_is_checked_at_load(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(ROOT / "configs" / "demo.yaml", [override])
    message = str(info.value)
    assert key in message and f"--set {override}" in message


def test_a_misspelt_choice_suggests_the_valid_one():
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        load_config(None, ["train.scheduler=cosin"])


def test_data_config_uses_the_one_converter():
    with pytest.raises(ConfigError, match=r"data\.patch_sise: unknown key; did you mean"):
        data_config_from_dict({"patch_sise": 64})
    cfg = data_config_from_dict({"train_tasks": [{"task": "derain", "roots": ["a"]}]})
    assert dataclasses.is_dataclass(cfg.train_tasks[0])


def test_prompts_follow_the_task_registry():
    assert list(DEGRADATIONS) == list(TASKS)
    assert [d.task_id for d in DEGRADATIONS.values()] == list(range(len(TASKS)))


def test_loader_workers_are_capped_at_the_cpu_count():
    from dfpir.data import loader_workers

    assert loader_workers(0) == 0
    assert 1 <= loader_workers(10_000) <= (torch.get_num_threads() + 10_000)
    assert loader_workers(10_000) < 10_000


def test_set_indexes_into_lists():
    """``--set train.stages.0.epochs=1`` changes one stage, not the whole list (issue 24)."""
    cfg = load_config(ROOT / "configs" / "demo.yaml", ["train.stages.0.epochs=1"])
    base = load_config(ROOT / "configs" / "demo.yaml")
    assert cfg.train.stages[0].epochs == 1 != base.train.stages[0].epochs
    assert cfg.train.stages[0].lr == base.train.stages[0].lr


@pytest.mark.parametrize("index", ["9", "x", "-1"])
def test_set_rejects_a_bad_list_index(index):
    with pytest.raises(ConfigError, match="not an index of that list"):
        load_config(ROOT / "configs" / "demo.yaml", [f"train.stages.{index}.epochs=1"])


@pytest.mark.parametrize("key", ["dist_timeout_s", "dist_wait_timeout_s"])
@pytest.mark.parametrize("value", ["1e30", "1e12", "1e-9", "0"])
def test_dist_timeouts_out_of_range_are_refused_when_read(key, value):
    """torch overflows past about a year (OverflowError on every rank) and cannot even meet
    its ranks in a nanosecond: both are config errors naming the key, before any rank starts."""
    with pytest.raises(ConfigError, match=rf"train\.{key}: .*in \[1, "):
        load_config(None, [f"train.{key}={value}"])


def test_an_invisible_character_in_a_set_key_is_shown():
    with pytest.raises(ConfigError, match=r"holds the invisible character\(s\) U\+200B.*did you "
                                          r"mean 'log_every'"):
        load_config(None, ["train.log_every\u200b=1"])


def test_a_set_into_a_list_entry_is_named_as_the_origin():
    """--set train.stages.0.lr=-1 is blamed on that --set, not on the config file."""
    with pytest.raises(ConfigError, match=r"train\.stages\[0\]\.lr: .*\(set in --set "
                                          r"train\.stages\.0\.lr=-1\)"):
        load_config(ROOT / "configs" / "demo.yaml", ["train.stages.0.lr=-1"])
