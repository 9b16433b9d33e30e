"""Configuration dataclasses of the data pipeline and the release's default settings.

Plain dataclasses of str/int/float/bool/list/dict fields so the project's YAML loader can build
them strictly. Relative paths are resolved against ``DataConfig.data_root``. ``DataConfig()``
is the release's three-task setting; ``default_five_task()`` and ``builtin_demo()`` give the
others.
"""

from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError
from ..schema import build_dataclass
from .errors import DataError
from .layouts import LAYOUT_MODES, LIST_MISSING_MODES
from .synthetic import (
    BlurConfig,
    HazeConfig,
    LowLightConfig,
    NoiseConfig,
    RainConfig,
    SyntheticConfig,
)
from .tasks import TASKS, task_family, validate_task

__all__ = [
    "BlurConfig",
    "BuiltinConfig",
    "DataConfig",
    "HazeConfig",
    "LowLightConfig",
    "NoiseConfig",
    "RainConfig",
    "SyntheticConfig",
    "TaskDataConfig",
    "TestSetConfig",
    "RELEASE_LISTS",
    "RELEASE_REPEATS",
    "TEST_NOISE_MODES",
    "builtin_demo",
    "data_config_from_dict",
    "default_five_task",
    "default_three_task",
]

# Repeat factors of the release's epoch: how often each sample list is concatenated.
RELEASE_REPEATS: dict[str, dict[str, int]] = {
    "three_task": {"denoise_15": 3, "denoise_25": 3, "denoise_50": 3, "derain": 120, "dehaze": 1},
    "five_task": {
        "denoise_15": 3,
        "denoise_25": 3,
        "denoise_50": 3,
        "derain": 80,
        "dehaze": 1,
        "deblur": 30,
        "lowlight": 60,
    },
}

# How the denoising test noise is drawn: "seeded" per (seed, task, image name), or the release's
# single stream (np.random.seed(seed) once, images in os.listdir order, test sets in config order)
TEST_NOISE_MODES: tuple[str, ...] = ("seeded", "release")

# The release's training lists, shipped in dfpir/resources/lists/ ("release:NAME" in a config)
RELEASE_LISTS: dict[str, str] = {
    "denoise": "release:denoise.txt",
    "derain": "release:rainTrain.txt",
    "dehaze": "release:hazy_outside.txt",
    "deblur": "release:train_gopro.txt",
    "lowlight": "release:train_lol.txt",
}

# Training folders, relative to data_root, in PromptIR's layout (see the README, "Data").
DEFAULT_TRAIN_ROOTS: dict[str, str] = {
    "denoise": "Train/Denoise",
    "derain": "Train/Derain",
    "dehaze": "Train/Dehaze",
    "deblur": "Train/Deblur",
    "lowlight": "Train/Lowlight",
}


@dataclass
class TaskDataConfig:
    """One training task: where its images are and how often its list repeats per epoch."""

    task: str  # a registered task name, e.g. "denoise_25", "derain"
    roots: list[str] = field(default_factory=list)  # folders in the task's layout
    list_file: str = ""  # optional subset: one image path per line, relative to a root;
    #                      "release:NAME" is the release's list NAME shipped with dfpir
    list_missing: Literal["error", "present", "scan"] = "error"  # listed files not on disk
    repeat: int = 1  # times the sample list is repeated in one epoch
    layout: str = "auto"  # "auto", "flat" (root/blur + root/sharp) or "nested" (per sequence)
    degraded_dir: str = ""  # override the standard degraded sub-folder name ("" = standard)
    clean_dir: str = ""  # override the clean sub-folder name (denoise: sub-folder of the root)
    use_cache: bool = True  # read through DataConfig.cache_dir when that is set

    def __post_init__(self) -> None:
        _check_item(self.task, self.layout)
        if self.list_missing not in LIST_MISSING_MODES:
            raise ValueError(f"list_missing of task {self.task!r} must be one of "
                             f"{LIST_MISSING_MODES}, got {self.list_missing!r}")
        if self.repeat < 0:
            raise ValueError(f"repeat of task {self.task!r} must be >= 0, got {self.repeat}")


@dataclass
class TestSetConfig:
    """One evaluation set: its name in result tables, its task (for the prompt) and folder."""

    __test__ = False  # not a pytest test class despite its name

    name: str  # e.g. "cbsd68_s25", "rain100l", "sots", "gopro", "lol"
    task: str  # its degradation (the prompt)
    root: str  # its folder, relative to data_root
    list_file: str = ""  # a file naming the images to use (optional)
    layout: str = "auto"  # auto, flat or nested (see Data)
    degraded_dir: str = ""  # sub-folder of the degraded images (default: the layout's)
    clean_dir: str = ""  # sub-folder of the clean images (default: the layout's)
    max_images: int = 0  # evaluate only the first N images (0 = all)

    def __post_init__(self) -> None:
        _check_item(self.task, self.layout)
        if self.max_images < 0:
            raise ValueError(f"max_images of test set {self.name!r} must be >= 0 (0 = all), "
                             f"got {self.max_images}")


@dataclass
class BuiltinConfig:
    """The download-free dataset made from scikit-image's colour photographs."""

    enabled: bool = False  # the built-in scikit-image photos (the demo)
    use_for_train: bool = True  # train on them
    use_for_test: bool = True  # validate on them
    tasks: list[str] = field(  # their synthetic degradations
        default_factory=lambda: ["denoise_25", "derain", "dehaze", "deblur", "lowlight"]
    )
    train_images: list[str] = field(  # photos to train on
        default_factory=lambda: [
            "astronaut",
            "rocket",
            "motorcycle_left",
            "motorcycle_right",
            "hubble_deep_field",
            "immunohistochemistry",
            "retina",
        ]
    )
    test_images: list[str] = field(default_factory=lambda: ["coffee", "chelsea"])  # held-out photos
    repeat: int = 16  # random crops per (image, task) in one epoch
    task_repeat: dict[str, int] = field(default_factory=dict)  # per-task override of repeat
    test_max_side: int = 0  # shrink test images so the longer side is at most this (0 = keep)

    def __post_init__(self) -> None:
        if self.enabled and not self.tasks:
            raise ValueError("tasks must name at least one task when the built-in data is "
                             f"enabled; valid names: {', '.join(TASKS)}")
        if self.repeat < 1:
            raise ValueError(f"repeat must be positive, got {self.repeat}")
        for task, repeat in self.task_repeat.items():
            if task not in TASKS:  # a task left out of ``tasks`` is fine: its entry is unused
                raise ValueError(f"task_repeat names {task!r}, which is not a task; valid "
                                 f"names: {', '.join(TASKS)}")
            if repeat < 1:
                raise ValueError(f"task_repeat of {task!r} must be positive, got {repeat}")
        if self.test_max_side < 0:
            raise ValueError(f"test_max_side must be >= 0 (0 = keep), got {self.test_max_side}")


@dataclass
class DataConfig:
    """Everything the data pipeline needs; the defaults are the release's three-task setting."""

    data_root: str = "data"  # relative roots and list files are taken relative to this
    # the training mix: one entry per task
    train_tasks: list[TaskDataConfig] = field(default_factory=lambda: _train_tasks("three_task"))
    # the sets validated and evaluated
    test_sets: list[TestSetConfig] = field(default_factory=lambda: _test_sets("three_task"))
    patch_size: int = 128  # the release: 128 (fine-tuning: 192)
    train_crop_multiple: int = 16  # centre-crop training images to a multiple first (0 = off)
    test_noise: Literal["seeded", "release"] = "seeded"  # release: np.random.seed once, listdir order
    small_image_policy: str = "pad"  # images smaller than the patch: "pad" (reflect) or "skip"
    num_workers: int = 4  # data-loading processes per training process
    seed: int = 0  # base seed of the test noise and of the built-in test degradations
    cache_dir: str = ""  # decode-once .npy cache for training images ("" = off)
    builtin: BuiltinConfig = field(default_factory=BuiltinConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        validate_data_config(self)


def _check_item(task: str, layout: str) -> None:
    validate_task(task)
    if layout not in LAYOUT_MODES:
        raise ValueError(f"layout of task {task!r} must be one of {LAYOUT_MODES}, got {layout!r}")


def _train_tasks(setting: str) -> list[TaskDataConfig]:
    return [
        TaskDataConfig(task=task, roots=[DEFAULT_TRAIN_ROOTS[task_family(task)]], repeat=repeat,
                       list_file=RELEASE_LISTS[task_family(task)])
        for task, repeat in RELEASE_REPEATS[setting].items()
    ]


def _test_sets(setting: str) -> list[TestSetConfig]:
    cbsd68 = "test/denoise/bsd68"
    common = [
        TestSetConfig(name="sots", task="dehaze", root="test/dehaze"),
        TestSetConfig(name="rain100l", task="derain", root="test/derain/Rain100L"),
    ]
    if setting == "three_task":
        return common + [
            TestSetConfig(name=f"cbsd68_s{s}", task=f"denoise_{s}", root=cbsd68)
            for s in (15, 25, 50)
        ]
    return common + [
        TestSetConfig(name="cbsd68_s25", task="denoise_25", root=cbsd68),
        TestSetConfig(name="gopro", task="deblur", root="test/deblur"),
        TestSetConfig(name="lol", task="lowlight", root="test/lowlight"),
    ]


def default_three_task() -> DataConfig:
    """The release's three-task setting (denoise x3 per sigma, derain x120, dehaze x1)."""
    return DataConfig()


def default_five_task() -> DataConfig:
    """The release's five-task setting (adds deblur x30 and low light x60; derain x80)."""
    return DataConfig(train_tasks=_train_tasks("five_task"), test_sets=_test_sets("five_task"))


def builtin_demo() -> DataConfig:
    """The CPU demo: built-in scikit-image photos, five tasks, 48x48 crops, no downloads."""
    return DataConfig(
        train_tasks=[],
        test_sets=[],
        patch_size=48,
        num_workers=0,
        builtin=BuiltinConfig(enabled=True),
    )


def validate_data_config(cfg: DataConfig) -> DataConfig:
    """Check values a type check cannot (task names, policies, sizes); raises ``ValueError``."""
    if cfg.small_image_policy not in ("pad", "skip"):
        raise ValueError(
            f"small_image_policy must be 'pad' or 'skip', got {cfg.small_image_policy!r}"
        )
    if cfg.train_crop_multiple < 0:
        raise ValueError(f"train_crop_multiple must be >= 0, got {cfg.train_crop_multiple}")
    if cfg.test_noise not in TEST_NOISE_MODES:
        raise ValueError(f"test_noise must be one of {TEST_NOISE_MODES}, got {cfg.test_noise!r}")
    if cfg.patch_size < 1:
        raise ValueError(f"patch_size must be positive, got {cfg.patch_size}")
    if cfg.seed < 0:
        raise ValueError(f"seed must be >= 0, got {cfg.seed}")
    if cfg.num_workers < 0:
        raise ValueError(f"num_workers must be >= 0 (0 = load in the main process), "
                         f"got {cfg.num_workers}")
    for item in [*cfg.train_tasks, *cfg.test_sets]:
        item.__post_init__()
    names = [t.name for t in cfg.test_sets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate test set names: {', '.join(duplicates)}")
    for task in cfg.builtin.tasks:
        try:
            validate_task(task)
        except DataError as err:
            raise ValueError(f"builtin.tasks: {err}") from None
    repeated = sorted({t for t in cfg.builtin.tasks if cfg.builtin.tasks.count(t) > 1})
    if repeated:
        raise ValueError(f"builtin.tasks: names {', '.join(repeated)} twice; each task once")
    return cfg


# ---------------------------------------------------------------- strict dict -> dataclass


def data_config_from_dict(d: dict | None, origin: dict[str, str] | None = None) -> DataConfig:
    """Build a ``DataConfig`` from the ``data:`` mapping of a YAML file, strictly.

    Unknown keys and wrongly typed values raise ``ConfigError`` (a ``ValueError``) naming the
    key (e.g. ``data.train_tasks[1].rooots``); keys left out keep the defaults of
    ``DataConfig``, i.e. the release's three-task setting (give ``train_tasks``/``test_sets`` to
    replace them). The converter is the project's one, ``dfpir.schema.build_dataclass``.
    """
    return _data_config(d, origin or {})


def _data_config(d: dict | None, origin: dict[str, str]) -> DataConfig:
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"data: expected a mapping, got {type(d).__name__}")
    return validate_data_config(build_dataclass(DataConfig, d, "data", origin))
