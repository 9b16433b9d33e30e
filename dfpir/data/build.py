"""Turning a ``DataConfig`` into datasets: the mixed training set and the named test sets."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch.utils.data import Dataset

from .builtin import BuiltinTestSet, BuiltinTrainSet, load_builtin_image
from .config import DataConfig, TaskDataConfig, TestSetConfig, validate_data_config
from .errors import DataError
from .layouts import ImagePair
from .scan import find_pairs
from .tasks import task_family
from .testset import PairedTestSet, release_noise_states
from .trainset import MixedTrainSet, TaskTrainSet

logger = logging.getLogger(__name__)


def loader_workers(requested: int) -> int:
    """``requested`` DataLoader workers, at most the CPUs this process may use (more only
    compete for the cores, and torch warns about it)."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    return max(0, min(int(requested), available))


def resolve_path(path: str, data_root: str) -> str:
    """``path`` itself when absolute or empty, else ``data_root``/``path``; '~' is expanded."""
    if not path:
        return path
    expanded = Path(path).expanduser()
    if expanded.is_absolute() or not data_root:
        return str(expanded)
    return str(Path(data_root).expanduser() / expanded)


RELEASE_LIST_PREFIX = "release:"
RELEASE_LIST_DIR = Path(__file__).resolve().parents[1] / "resources" / "lists"


def resolve_list_file(list_file: str, data_root: str) -> str:
    """A list file's path: ``release:NAME`` is the release's list NAME shipped in
    ``dfpir/resources/lists/``; anything else goes through ``resolve_path``."""
    if list_file.startswith(RELEASE_LIST_PREFIX):
        name = list_file[len(RELEASE_LIST_PREFIX):]
        path = RELEASE_LIST_DIR / name
        if not path.is_file():
            shipped = ", ".join(sorted(p.name for p in RELEASE_LIST_DIR.glob("*.txt")))
            raise DataError(f"list_file {list_file!r}: no such shipped list; the release's "
                            f"lists are: {shipped}")
        return str(path)
    return resolve_path(list_file, data_root)


def task_pairs(task_cfg: TaskDataConfig, data_root: str) -> list[ImagePair]:
    """The training samples one task config points at (raises ``LayoutError`` on problems)."""
    return find_pairs(
        task_cfg.task,
        [resolve_path(root, data_root) for root in task_cfg.roots],
        list_file=resolve_list_file(task_cfg.list_file, data_root),
        layout=task_cfg.layout,
        degraded_dir=task_cfg.degraded_dir,
        clean_dir=task_cfg.clean_dir,
        list_missing=task_cfg.list_missing,
    )


def test_set_pairs(test_cfg: TestSetConfig, data_root: str, limit: bool = True
                   ) -> list[ImagePair]:
    """The images of one test set config, at most ``max_images`` of them (with ``limit``)."""
    pairs = find_pairs(
        test_cfg.task,
        [resolve_path(test_cfg.root, data_root)],
        list_file=resolve_list_file(test_cfg.list_file, data_root),
        layout=test_cfg.layout,
        degraded_dir=test_cfg.degraded_dir,
        clean_dir=test_cfg.clean_dir,
    )
    return pairs[: test_cfg.max_images] if test_cfg.max_images > 0 and limit else pairs


def build_train_dataset(cfg: DataConfig) -> MixedTrainSet:
    """The all-in-one training set of ``cfg``: every task's samples repeated by its factor,
    plus the built-in photos when ``cfg.builtin`` is enabled for training.

    Items are ``(degraded, clean, task)``; ``.task_counts()`` gives the samples per task.
    """
    validate_data_config(cfg)
    parts: list[tuple[Dataset, int]] = []
    for task_cfg in cfg.train_tasks:
        if task_cfg.repeat == 0:
            continue
        pairs = task_pairs(task_cfg, cfg.data_root)
        cache_dir = resolve_path(cfg.cache_dir, "") if task_cfg.use_cache else ""
        dataset = TaskTrainSet(
            task_cfg.task, pairs, cfg.patch_size, cfg.small_image_policy, cache_dir,
            crop_multiple=cfg.train_crop_multiple,
        )
        parts.append((dataset, task_cfg.repeat))
    if cfg.builtin.enabled and cfg.builtin.use_for_train:
        photos = {name: load_builtin_image(name) for name in cfg.builtin.train_images}
        for task in cfg.builtin.tasks:
            dataset = BuiltinTrainSet(
                task, cfg.builtin.train_images, cfg.patch_size, cfg.synthetic, preloaded=photos
            )
            parts.append((dataset, cfg.builtin.task_repeat.get(task, cfg.builtin.repeat)))
    if not parts:
        raise DataError(
            "the data config names no training task (train_tasks is empty and the "
            "built-in dataset is not enabled for training)"
        )
    mixed = MixedTrainSet(parts)
    logger.info("training samples per epoch: %s", mixed.task_counts())
    return mixed


def build_test_datasets(cfg: DataConfig) -> dict[str, Dataset]:
    """The named test sets of ``cfg`` (e.g. 'sots', 'cbsd68_s25', 'builtin_derain'), in order.

    Items are ``(degraded, clean, task, name)``; every set has ``.task`` for the prompt lookup.
    """
    validate_data_config(cfg)
    sets: dict[str, Dataset] = {}
    every = {t.name: test_set_pairs(t, cfg.data_root, limit=False) for t in cfg.test_sets}
    states: dict[str, dict] = {}
    if cfg.test_noise == "release":  # one stream over the denoising sets, in config order
        noisy = [t.name for t in cfg.test_sets if task_family(t.task) == "denoise"]
        states = dict(zip(noisy, release_noise_states([every[n] for n in noisy], cfg.seed)))
    for test_cfg in cfg.test_sets:
        pairs = every[test_cfg.name]
        if test_cfg.max_images > 0:
            pairs = pairs[: test_cfg.max_images]
        sets[test_cfg.name] = PairedTestSet(test_cfg.name, test_cfg.task, pairs, cfg.seed,
                                            noise_states=states.get(test_cfg.name))
    if cfg.builtin.enabled and cfg.builtin.use_for_test:
        for task in cfg.builtin.tasks:
            dataset = BuiltinTestSet(
                task, cfg.builtin.test_images, cfg.seed, cfg.synthetic, cfg.builtin.test_max_side
            )
            if dataset.name in sets:
                raise DataError(f"test set name {dataset.name!r} is used twice")
            sets[dataset.name] = dataset
    return sets


def training_image_paths(cfg: DataConfig, cached_only: bool = True) -> list[str]:
    """Every image file the training tasks read (for filling the cache), without duplicates.

    With ``cached_only``, tasks whose ``use_cache`` is false are left out.
    """
    paths: dict[str, None] = {}
    for task_cfg in cfg.train_tasks:
        if task_cfg.repeat == 0 or (cached_only and not task_cfg.use_cache):
            continue
        for pair in task_pairs(task_cfg, cfg.data_root):
            paths[pair.clean] = None
            if pair.degraded:
                paths[pair.degraded] = None
    return list(paths)
