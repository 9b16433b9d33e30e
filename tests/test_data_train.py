"""The training sets: aligned crops, the release's augmentation and repeat factors, noise,
small images, the decode cache, and DataLoader workers."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data_fixtures import (
    OFFSET,
    clean_image,
    make_dehaze,
    make_denoise,
    make_derain_train,
    make_gopro_flat,
    make_gopro_nested,
    make_lol,
)
from torch.utils.data import DataLoader, Dataset

from dfpir.data import (
    DataConfig,
    DataError,
    ImagePair,
    MixedTrainSet,
    TaskDataConfig,
    TaskTrainSet,
    build_train_dataset,
    default_five_task,
    default_three_task,
    find_pairs,
    read_image,
    seed_worker,
    write_image,
)
from dfpir.data.transforms import augment


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    return np.round(tensor.numpy().transpose(1, 2, 0) * 255).astype(np.int32)


def locate(patch: np.ndarray, image: np.ndarray) -> list[tuple[int, int, int]]:
    """Every (mode, top, left) such that augment(image crop, mode) equals ``patch``."""
    size = patch.shape[0]
    hits = []
    for mode in range(8):
        for top in range(image.shape[0] - size + 1):
            for left in range(image.shape[1] - size + 1):
                crop = image[top : top + size, left : left + size]
                if np.array_equal(augment(crop, mode), patch):
                    hits.append((mode, top, left))
    return hits


def test_paired_crops_are_aligned_and_augmented_alike(tmp_path):
    make_derain_train(tmp_path, count=2)
    dataset = TaskTrainSet("derain", find_pairs("derain", [str(tmp_path)]), patch_size=16)
    torch.manual_seed(0)
    modes = set()
    for index in range(12):
        degraded, clean, task = dataset[index % 2]
        assert task == "derain"
        assert degraded.shape == clean.shape == (3, 16, 16)
        assert degraded.dtype == clean.dtype == torch.float32
        assert 0.0 <= float(clean.min()) and float(degraded.max()) <= 1.0
        np.testing.assert_array_equal(to_uint8(degraded) - to_uint8(clean), OFFSET)
        if index < 4:
            source = read_image(dataset.pairs[index % 2].clean).astype(np.int32)
            hits = locate(to_uint8(clean), source)
            assert hits, "the clean patch is not a flipped/rotated crop of its image"
            modes.add(hits[0][0])
    assert 0 not in modes  # the identity is never drawn


def test_nested_gopro_and_lowlight_crops_are_aligned(tmp_path):
    make_gopro_nested(tmp_path / "gopro")
    make_lol(tmp_path / "lol")
    torch.manual_seed(1)
    for task, root in (("deblur", "gopro"), ("lowlight", "lol")):
        dataset = TaskTrainSet(task, find_pairs(task, [str(tmp_path / root)]), patch_size=24)
        for index in range(len(dataset)):
            degraded, clean, _ = dataset[index]
            np.testing.assert_array_equal(to_uint8(degraded) - to_uint8(clean), OFFSET)


def make_release_folders(root, five_task: bool) -> dict[str, int]:
    """The default folder names of DataConfig, with a few images each; returns the counts."""
    make_denoise(root / "Train" / "Denoise", count=4)
    make_derain_train(root / "Train" / "Derain", count=2)
    make_dehaze(root / "Train" / "Dehaze", ids=1, per_id=3)
    counts = {"denoise": 4, "derain": 2, "dehaze": 3}
    if five_task:
        make_gopro_flat(root / "Train" / "Deblur", count=2)
        make_lol(root / "Train" / "Lowlight", count=3)
        counts.update(deblur=2, lowlight=3)
    return counts


def test_release_repeat_factors_three_task(tmp_path):
    counts = make_release_folders(tmp_path, five_task=False)
    cfg = default_three_task()
    cfg.data_root = str(tmp_path)
    for task in cfg.train_tasks:  # the generated folders are not the release's lists: scan
        task.list_missing = "scan"
    mixed = build_train_dataset(cfg)
    expected = {
        "denoise_15": 3 * counts["denoise"],
        "denoise_25": 3 * counts["denoise"],
        "denoise_50": 3 * counts["denoise"],
        "derain": 120 * counts["derain"],
        "dehaze": 1 * counts["dehaze"],
    }
    assert mixed.task_counts() == expected
    assert len(mixed) == sum(expected.values())
    torch.manual_seed(0)
    seen = {}
    for index in range(len(mixed)):
        if index in mixed.offsets or index == len(mixed) - 1:
            seen[index] = mixed[index][2]
    assert seen[0] == "denoise_15" and seen[len(mixed) - 1] == "dehaze"


def test_release_repeat_factors_five_task(tmp_path):
    counts = make_release_folders(tmp_path, five_task=True)
    cfg = default_five_task()
    cfg.data_root = str(tmp_path)
    for task in cfg.train_tasks:
        task.list_missing = "scan"
    assert build_train_dataset(cfg).task_counts() == {
        "denoise_15": 3 * counts["denoise"],
        "denoise_25": 3 * counts["denoise"],
        "denoise_50": 3 * counts["denoise"],
        "derain": 80 * counts["derain"],
        "dehaze": counts["dehaze"],
        "deblur": 30 * counts["deblur"],
        "lowlight": 60 * counts["lowlight"],
    }


def test_mixed_set_maps_every_index_to_its_task():
    class Fake(Dataset):
        def __init__(self, task, size):
            self.task, self.size = task, size

        def __len__(self):
            return self.size

        def __getitem__(self, index):
            return index, None, self.task

    mixed = MixedTrainSet([(Fake("derain", 2), 3), (Fake("dehaze", 5), 1), (Fake("deblur", 4), 0)])
    items = [mixed[i] for i in range(len(mixed))]
    assert [t for _, _, t in items] == ["derain"] * 6 + ["dehaze"] * 5
    assert [i for i, _, _ in items] == [0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 4]
    with pytest.raises(IndexError):
        mixed[len(mixed)]


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_training_noise_statistics(tmp_path, sigma):
    write_image(tmp_path / "gray.png", np.full((64, 64, 3), 128, np.uint8))
    dataset = TaskTrainSet(f"denoise_{sigma}", [ImagePair("gray", str(tmp_path / "gray.png"))], 64)
    torch.manual_seed(0)
    diffs = np.concatenate([(d - c).numpy().ravel() for d, c, _ in (dataset[0] for _ in range(4))])
    # truncation to uint8 lowers the mean by about half a level; clipping is negligible here
    assert abs(diffs.std() * 255 - sigma) < 0.03 * sigma + 0.3
    assert abs(diffs.mean() * 255 + 0.5) < 0.3 + 0.01 * sigma


def test_small_images_are_padded_with_a_warning(tmp_path, caplog):
    write_image(tmp_path / "rainy" / "rain-1.png", clean_image(1, 10, 12) + OFFSET)
    write_image(tmp_path / "gt" / "norain-1.png", clean_image(1, 10, 12))
    dataset = TaskTrainSet("derain", find_pairs("derain", [str(tmp_path)]), 16, "pad")
    with caplog.at_level(logging.WARNING):
        degraded, clean, _ = dataset[0]
        dataset[0]
    assert clean.shape == (3, 16, 16)
    np.testing.assert_array_equal(to_uint8(degraded) - to_uint8(clean), OFFSET)
    assert caplog.text.count("smaller than the 16 patch") == 1 and "rain-1.png" in caplog.text


def test_small_images_are_skipped_or_fail_clearly(tmp_path, caplog):
    write_image(tmp_path / "tiny.png", clean_image(1, 8, 8))
    write_image(tmp_path / "big.png", clean_image(2, 40, 40))
    pairs = find_pairs("denoise_15", [str(tmp_path)])
    dataset = TaskTrainSet("denoise_15", pairs, 32, "skip")
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            assert dataset[pairs.index(next(p for p in pairs if p.name == "tiny"))][0].shape == (
                3,
                32,
                32,
            )
    assert "skipping it" in caplog.text
    only_tiny = TaskTrainSet("denoise_15", [p for p in pairs if p.name == "tiny"], 32, "skip")
    with caplog.at_level(logging.WARNING):
        assert only_tiny[0][0].shape == (3, 32, 32)  # falls back to padding, never crashes
    assert "no image of at least 32x32" in caplog.text


def test_pair_of_different_sizes_is_an_error(tmp_path):
    write_image(tmp_path / "blur" / "a.png", clean_image(1, 40, 50))
    write_image(tmp_path / "sharp" / "a.png", clean_image(1, 40, 48))
    dataset = TaskTrainSet("deblur", find_pairs("deblur", [str(tmp_path)]), 16)
    with pytest.raises(DataError, match=r"different sizes: .*blur/a.png is 50x40"):
        dataset[0]


def test_corrupt_training_file_names_the_file(tmp_path):
    make_lol(tmp_path, count=1)
    (tmp_path / "low" / "0000.png").write_bytes(b"corrupt")
    dataset = TaskTrainSet("lowlight", find_pairs("lowlight", [str(tmp_path)]), 16)
    with pytest.raises(DataError, match=r"low/0000.png"):
        dataset[0]


def test_cache_gives_identical_samples_and_reads_memory_maps(tmp_path):
    make_gopro_flat(tmp_path / "gopro", count=2)
    pairs = find_pairs("deblur", [str(tmp_path / "gopro")])
    plain = TaskTrainSet("deblur", pairs, 16)
    cached = TaskTrainSet("deblur", pairs, 16, cache_dir=str(tmp_path / "cache"))
    for dataset in (plain, cached):
        torch.manual_seed(5)
        dataset.outputs = [dataset[i % 2] for i in range(4)]
    for a, b in zip(plain.outputs, cached.outputs, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 4
    assert isinstance(cached.load(pairs[0].clean), np.memmap)


def _disk_fills_after(monkeypatch, files: int) -> None:
    """The cache's disk holds ``files`` files, then numpy's short write: part of the file is
    written, then ``OSError: N requested and M written`` (no errno), as on a full disk."""
    import dfpir.data.cache as cache_module

    real_save, calls = np.save, []

    def save(path, array):
        calls.append(path)
        if len(calls) > files:
            Path(path).write_bytes(b"\x93NUMPY partial")
            raise OSError(f"{array.nbytes} requested and 12 written")
        real_save(path, array)

    monkeypatch.setattr(cache_module.np, "save", save)


def test_a_full_cache_disk_is_said_once_and_training_reads_on(tmp_path, monkeypatch, caplog):
    """The cache is a speed-up: a full disk removes the partial file, says so once and the
    images still load (decoded), equal to the uncached ones."""
    from dfpir.data import ImageLoader, read_image

    make_gopro_flat(tmp_path / "gopro", count=2)
    pairs = find_pairs("deblur", [str(tmp_path / "gopro")])
    cache = tmp_path / "cache"
    _disk_fills_after(monkeypatch, files=1)
    loaders = [ImageLoader(str(cache)), ImageLoader(str(cache))]  # as two loader workers
    with caplog.at_level(logging.WARNING, logger="dfpir"):
        for loader in loaders:
            for pair in pairs:
                for path in (pair.degraded, pair.clean):
                    np.testing.assert_array_equal(loader(path), read_image(path))
    said = [r.getMessage() for r in caplog.records if "decode cache" in r.getMessage()]
    assert len(said) == 1 and "full" in said[0], said
    assert not list(cache.rglob("*.tmp.npy"))
    assert len(list(cache.rglob("*.npy"))) == 1  # what was cached before is still used


def test_prepare_cache_on_a_full_disk_is_one_error_line(tmp_path, monkeypatch, capsys):
    from dfpir.cli import prepare

    make_gopro_flat(tmp_path / "gopro", count=2)
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  data_root: {tmp_path}\n  test_sets: []\n  train_tasks:\n"
                      "    - {task: deblur, roots: [gopro]}\n")
    _disk_fills_after(monkeypatch, files=2)
    cache = tmp_path / "cache"
    assert prepare.main(["--cache", str(cache), "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --cache: cannot write the decode cache")
    assert "Traceback" not in "\n".join(err)
    assert not list(cache.rglob("*.tmp.npy")) and len(list(cache.rglob("*.npy"))) == 2


def rain_and_noise_config(tmp_path, denoise_task: str, repeat: int) -> DataConfig:
    """Two training tasks on tiny fake folders: derain pairs and clean images to add noise to."""
    make_derain_train(tmp_path / "rain", count=2)
    make_denoise(tmp_path / "clean", count=2)
    return DataConfig(
        data_root=str(tmp_path),
        patch_size=16,
        train_tasks=[
            TaskDataConfig(task="derain", roots=["rain"], repeat=repeat),
            TaskDataConfig(task=denoise_task, roots=["clean"], repeat=repeat),
        ],
        test_sets=[],
    )


def test_dataloader_two_workers_mixed_set(tmp_path):
    mixed = build_train_dataset(rain_and_noise_config(tmp_path, "denoise_25", repeat=4))
    copy = pickle.loads(pickle.dumps(mixed))
    assert copy[0][0].shape == (3, 16, 16)
    loader = DataLoader(
        mixed,
        batch_size=4,
        shuffle=True,
        num_workers=2,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(0),
    )
    batches = list(loader)
    assert sum(len(b[2]) for b in batches) == len(mixed) == 16
    degraded, clean, tasks = batches[0]
    assert degraded.shape == (4, 3, 16, 16) and set(tasks) <= {"derain", "denoise_25"}


def test_workers_draw_different_random_streams(tmp_path):
    write_image(tmp_path / "a.png", clean_image(7, 40, 50))
    single = TaskTrainSet("denoise_50", [ImagePair("a", str(tmp_path / "a.png"))], 16)
    mixed = MixedTrainSet([(single, 4)])
    loader = DataLoader(mixed, batch_size=1, num_workers=2, shuffle=False)
    first_of_worker0, first_of_worker1 = [b[1] for b in list(loader)[:2]]
    assert not torch.equal(first_of_worker0, first_of_worker1)


class NumpyRandom(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return float(np.random.random())


def test_seed_worker_gives_each_worker_its_own_numpy_stream():
    loader = DataLoader(NumpyRandom(), batch_size=1, num_workers=2, worker_init_fn=seed_worker)
    values = [float(v) for v in loader]
    assert values[0] != values[1]  # first draw of worker 0 and of worker 1


def test_set_epoch_makes_items_a_function_of_seed_epoch_and_index(tmp_path):
    cfg = rain_and_noise_config(tmp_path, "denoise_50", repeat=2)
    first, second = build_train_dataset(cfg), build_train_dataset(cfg)
    first.set_epoch(0, 3)
    second.set_epoch(0, 3)
    forward = [first[i] for i in range(len(first))]
    backward = {i: second[i] for i in reversed(range(len(second)))}
    for index, item in enumerate(forward):
        assert torch.equal(item[0], backward[index][0]) and item[2] == backward[index][2]
    loader = DataLoader(second, batch_size=1, num_workers=2, shuffle=False)
    for index, batch in enumerate(loader):
        assert torch.equal(batch[0][0], forward[index][0])
    second.set_epoch(0, 4)
    assert not torch.equal(second[0][1], forward[0][1])
    assert not torch.equal(forward[0][1], forward[2][1])  # repeats of one image differ


# ------------------------------------------------------------------ the release's centre crop


def test_training_crop_to_multiple_of_16_before_the_patch(tmp_path):
    """The release centre-crops every training image to a multiple of 16 before the random
    patch: with crop_multiple 16 no patch reaches the dropped border, without it some do."""
    make_lol(tmp_path, count=1)  # 40x50: the crop keeps rows 4..35 and columns 1..48
    pairs = find_pairs("lowlight", [str(tmp_path)])
    image = read_image(pairs[0].clean).astype(np.int32)

    def spans(crop_multiple: int) -> tuple[int, int, int, int]:
        dataset = TaskTrainSet("lowlight", pairs, 16, crop_multiple=crop_multiple)
        tops, lefts = [], []
        for i in range(40):
            _, clean, _ = dataset.sample(0, np.random.default_rng(i))
            (_, top, left), *_ = locate(to_uint8(clean), image)
            tops.append(top)
            lefts.append(left)
        return min(tops), max(tops) + 16, min(lefts), max(lefts) + 16

    top, bottom, left, right = spans(16)
    assert top >= 4 and bottom <= 36 and left >= 1 and right <= 49
    top, bottom, left, right = spans(0)
    assert top < 4 or bottom > 36 or left < 1 or right > 49
    assert DataConfig().train_crop_multiple == 16  # on by default, as the release


def test_build_train_dataset_passes_the_crop_multiple(tmp_path):
    make_lol(tmp_path / "lol", count=1)
    task = TaskDataConfig(task="lowlight", roots=[str(tmp_path / "lol")], repeat=1)
    on = build_train_dataset(DataConfig(train_tasks=[task], test_sets=[], patch_size=16))
    off = build_train_dataset(DataConfig(train_tasks=[task], test_sets=[], patch_size=16,
                                         train_crop_multiple=0))
    assert on.parts[0][0].crop_multiple == 16 and off.parts[0][0].crop_multiple == 0
