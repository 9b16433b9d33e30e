"""Data pipeline of DFPIR: paired datasets per task, the mixed all-in-one training set, test
sets following the evaluation protocol, synthetic degradations and a download-free dataset.

Entry points: ``build_train_dataset``, ``build_test_datasets``, ``check_data``, the config
helpers ``default_three_task``/``default_five_task``/``builtin_demo``, ``crop_to_multiple``
(evaluation crop), ``read_image``/``write_image`` and ``seed_worker`` (DataLoader
``worker_init_fn``). See the README, "Data".
"""

from .build import (
    build_test_datasets,
    build_train_dataset,
    loader_workers,
    resolve_path,
    training_image_paths,
)
from .builtin import BUILTIN_IMAGES, BuiltinTestSet, BuiltinTrainSet, load_builtin_image
from .cache import CacheWriteError, ImageCache, ImageLoader, fill_cache
from .check import DataCheckReport, SetCheck, check_data
from .config import (
    RELEASE_REPEATS,
    BuiltinConfig,
    DataConfig,
    TaskDataConfig,
    TestSetConfig,
    builtin_demo,
    data_config_from_dict,
    default_five_task,
    default_three_task,
    validate_data_config,
)
from .errors import DataError, ImageReadError, LayoutError
from .io import image_header, read_image, read_image_raw, to_uint8_rgb, write_image
from .layouts import ImagePair
from .scan import find_pairs, scan_task_folders
from .synthetic import (
    BlurConfig,
    HazeConfig,
    LowLightConfig,
    NoiseConfig,
    RainConfig,
    SyntheticConfig,
    add_gaussian_noise,
    add_haze,
    add_low_light,
    add_motion_blur,
    add_rain,
    degrade,
)
from .tasks import TASKS, noise_sigma, task_family, validate_task
from .testset import PairedTestSet
from .trainset import MixedTrainSet, TaskTrainSet, seed_worker
from .transforms import add_gaussian_noise_uint8, crop_to_multiple, item_rng, stable_seed

__all__ = [
    "BUILTIN_IMAGES",
    "RELEASE_REPEATS",
    "TASKS",
    "loader_workers",
    "BlurConfig",
    "BuiltinConfig",
    "BuiltinTestSet",
    "BuiltinTrainSet",
    "DataCheckReport",
    "DataConfig",
    "DataError",
    "HazeConfig",
    "ImageCache",
    "ImageLoader",
    "ImagePair",
    "ImageReadError",
    "LayoutError",
    "LowLightConfig",
    "MixedTrainSet",
    "NoiseConfig",
    "PairedTestSet",
    "RainConfig",
    "SetCheck",
    "SyntheticConfig",
    "TaskDataConfig",
    "TaskTrainSet",
    "TestSetConfig",
    "add_gaussian_noise",
    "add_gaussian_noise_uint8",
    "add_haze",
    "add_low_light",
    "add_motion_blur",
    "add_rain",
    "build_test_datasets",
    "build_train_dataset",
    "builtin_demo",
    "check_data",
    "crop_to_multiple",
    "data_config_from_dict",
    "default_five_task",
    "default_three_task",
    "degrade",
    "fill_cache",
    "CacheWriteError",
    "find_pairs",
    "image_header",
    "item_rng",
    "load_builtin_image",
    "noise_sigma",
    "read_image",
    "read_image_raw",
    "resolve_path",
    "scan_task_folders",
    "seed_worker",
    "stable_seed",
    "task_family",
    "to_uint8_rgb",
    "training_image_paths",
    "validate_data_config",
    "validate_task",
    "write_image",
]
