"""Data configs: the release's defaults, strict conversion from YAML mappings, plain types."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from dfpir.config import data_config_from_yaml
from dfpir.data import (
    RELEASE_REPEATS,
    DataConfig,
    TaskDataConfig,
    builtin_demo,
    data_config_from_dict,
    default_five_task,
    default_three_task,
)


def repeats(cfg: DataConfig) -> dict[str, int]:
    return {t.task: t.repeat for t in cfg.train_tasks}


def test_release_defaults():
    three, five = default_three_task(), default_five_task()
    assert three == DataConfig()
    assert repeats(three) == {
        "denoise_15": 3,
        "denoise_25": 3,
        "denoise_50": 3,
        "derain": 120,
        "dehaze": 1,
    }
    assert repeats(five) == {
        "denoise_15": 3,
        "denoise_25": 3,
        "denoise_50": 3,
        "derain": 80,
        "dehaze": 1,
        "deblur": 30,
        "lowlight": 60,
    }
    assert repeats(five) == RELEASE_REPEATS["five_task"]
    assert three.patch_size == 128
    assert [s.name for s in three.test_sets] == [
        "sots",
        "rain100l",
        "cbsd68_s15",
        "cbsd68_s25",
        "cbsd68_s50",
    ]
    assert [s.name for s in five.test_sets] == ["sots", "rain100l", "cbsd68_s25", "gopro", "lol"]
    demo = builtin_demo()
    assert demo.builtin.enabled and demo.patch_size == 48 and not demo.train_tasks


ALLOWED = {str, int, float, bool}


def check_plain(cls) -> None:
    for field in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[field.name]
        origin = typing.get_origin(hint)
        if dataclasses.is_dataclass(hint):
            check_plain(hint)
        elif origin in (list, dict):
            for arg in typing.get_args(hint):
                assert arg in ALLOWED or dataclasses.is_dataclass(arg), (cls, field.name)
                if dataclasses.is_dataclass(arg):
                    check_plain(arg)
        elif origin is typing.Literal:  # a choice of plain values, checked at load
            assert all(type(arg) in ALLOWED for arg in typing.get_args(hint)), (cls, field.name)
        else:
            assert hint in ALLOWED, (cls.__name__, field.name, hint)


def test_config_fields_are_plain_types():
    check_plain(DataConfig)


def test_from_dict_builds_nested_and_keeps_defaults():
    cfg = data_config_from_dict(
        {
            "patch_size": 64,
            "train_tasks": [
                {"task": "deblur", "roots": ["GoPro_Large/train"], "repeat": 30, "layout": "nested"}
            ],
            "builtin": {"enabled": True, "repeat": 4},
            "synthetic": {"rain": {"density_max": 0.01}},
        }
    )
    assert cfg.patch_size == 64 and cfg.train_tasks[0].layout == "nested"
    assert cfg.builtin.enabled and cfg.builtin.repeat == 4 and cfg.builtin.tasks
    assert cfg.synthetic.rain.density_max == 0.01 and cfg.synthetic.rain.density_min == 0.0015
    assert len(cfg.test_sets) == 5  # defaults kept
    assert data_config_from_dict(None) == DataConfig()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"patchsize": 1}, "data.patchsize: unknown key"),
        ({"train_tasks": [{"task": "derain", "rooots": []}]}, "data.train_tasks[0].rooots"),
        ({"synthetic": {"haze": {"beta": 1}}}, "data.synthetic.haze.beta"),
        ({"patch_size": "64"}, "data.patch_size: expected an integer"),
        ({"builtin": {"enabled": "yes"}}, "data.builtin.enabled"),
        ({"train_tasks": [{"task": "denoise"}]}, "unknown task 'denoise'"),
        ({"small_image_policy": "crop"}, "small_image_policy"),
        ({"train_tasks": [{"roots": ["x"]}]}, "task"),
        ({"builtin": {"task_repeat": {"derain_x": 2}}}, "task_repeat names 'derain_x', which is not a task"),
        ({"builtin": {"task_repeat": {"deblur": 0}}}, "task_repeat of 'deblur' must be positive"),
    ],
)
def test_from_dict_is_strict(values, message):
    with pytest.raises(ValueError) as info:
        data_config_from_dict(values)
    assert message in str(info.value)


def test_builtin_task_repeat_overrides_the_repeat_of_one_task():
    from dfpir.data.build import build_train_dataset

    cfg = data_config_from_dict({"train_tasks": [], "builtin": {
        "enabled": True, "repeat": 2, "tasks": ["derain", "deblur"],
        "train_images": ["astronaut"], "task_repeat": {"deblur": 5}}})
    assert build_train_dataset(cfg).task_counts() == {"derain": 2, "deblur": 5}
    # a valid task left out of ``tasks`` (e.g. --set data.builtin.tasks=[derain]) is unused
    cfg = data_config_from_dict({"train_tasks": [], "builtin": {
        "enabled": True, "repeat": 2, "tasks": ["derain"],
        "train_images": ["astronaut"], "task_repeat": {"deblur": 5}}})
    assert build_train_dataset(cfg).task_counts() == {"derain": 2}


def test_from_yaml_reads_the_data_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {anything: 1}\ndata:\n  patch_size: 96\n  seed: 3\n")
    cfg = data_config_from_yaml(str(path))
    assert cfg.patch_size == 96 and cfg.seed == 3
    path.write_text("data:\n  seeed: 3\n")
    with pytest.raises(ValueError, match="data.seeed: unknown key") as info:
        data_config_from_yaml(str(path))
    assert str(path) in str(info.value)


def test_task_config_validates_itself():
    with pytest.raises(ValueError, match="unknown task"):
        TaskDataConfig(task="dehazing")
    with pytest.raises(ValueError, match="layout"):
        TaskDataConfig(task="dehaze", layout="tree")


def test_from_yaml_follows_the_base_chain(tmp_path):
    (tmp_path / "base.yaml").write_text("data:\n  data_root: /datasets\n  seed: 7\n")
    (tmp_path / "top.yaml").write_text("base: base.yaml\ndata:\n  seed: 3\n")
    cfg = data_config_from_yaml(str(tmp_path / "top.yaml"))
    assert cfg.data_root == "/datasets" and cfg.seed == 3
