"""Test sets: the multiple-of-16 centre crop, item names, seeded noise identical across runs,
orders and processes, and the paper's test-set names."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data_fixtures import (
    OFFSET,
    clean_image,
    make_dehaze,
    make_denoise,
    make_derain_test,
    make_gopro_flat,
    make_lol,
)

from dfpir.data import (
    DataConfig,
    DataError,
    ImagePair,
    PairedTestSet,
    TestSetConfig,
    build_test_datasets,
    crop_to_multiple,
    default_five_task,
    default_three_task,
    find_pairs,
    write_image,
)


@pytest.mark.parametrize(("height", "width", "top", "left"), [(40, 50, 4, 1), (41, 47, 4, 7)])
def test_crop_to_multiple_numpy_and_torch(height, width, top, left):
    image = np.arange(height * width * 3).reshape(height, width, 3)
    out = crop_to_multiple(image)
    new_h, new_w = height - height % 16, width - width % 16
    assert out.shape == (new_h, new_w, 3)
    np.testing.assert_array_equal(out, image[top : top + new_h, left : left + new_w])
    chw = torch.from_numpy(image.transpose(2, 0, 1).copy())
    assert torch.equal(crop_to_multiple(chw), torch.from_numpy(out.transpose(2, 0, 1).copy()))
    assert crop_to_multiple(chw[None]).shape == (1, 3, new_h, new_w)
    assert crop_to_multiple(np.zeros((32, 48))).shape == (32, 48)


def test_paired_test_items(tmp_path):
    make_derain_test(tmp_path)
    dataset = PairedTestSet("rain100l", "derain", find_pairs("derain", [str(tmp_path)]))
    degraded, clean, task, name = dataset[0]
    assert (task, name) == ("derain", "rain-1")
    assert degraded.shape == clean.shape == (3, 32, 48)
    expected = crop_to_multiple(clean_image(100)).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(clean.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose((degraded - clean).numpy(), OFFSET / 255.0, atol=1e-6)


def test_test_pair_of_different_sizes_names_both_files(tmp_path):
    write_image(tmp_path / "low" / "1.png", clean_image(1, 40, 50))
    write_image(tmp_path / "high" / "1.png", clean_image(1, 44, 50))
    dataset = PairedTestSet("lol", "lowlight", find_pairs("lowlight", [str(tmp_path)]))
    with pytest.raises(DataError, match=r"low/1.png is 50x40, .*high/1.png is 50x44"):
        dataset[0]


def noisy_digest(root: str, seed: int, reverse: bool = False) -> list[str]:
    dataset = PairedTestSet("cbsd68_s25", "denoise_25", find_pairs("denoise_25", [root]), seed)
    order = range(len(dataset) - 1, -1, -1) if reverse else range(len(dataset))
    digests = {
        dataset[i][3]: hashlib.sha1(dataset[i][0].numpy().tobytes()).hexdigest() for i in order
    }
    return [digests[name] for name in sorted(digests)]


def test_seeded_test_noise_is_identical_across_runs_orders_and_processes(tmp_path):
    make_denoise(tmp_path, count=3)
    first = noisy_digest(str(tmp_path), seed=0)
    assert first == noisy_digest(str(tmp_path), seed=0)
    assert first == noisy_digest(str(tmp_path), seed=0, reverse=True)
    assert len(set(first)) == 3  # every image has its own noise
    assert first != noisy_digest(str(tmp_path), seed=1)
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]);"
        "from test_data_testsets import noisy_digest;"
        "print(','.join(noisy_digest(sys.argv[1], 0)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip().split(",") == first


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_test_noise_statistics(tmp_path, sigma):
    write_image(tmp_path / "gray.png", np.full((96, 96, 3), 128, np.uint8))
    dataset = PairedTestSet(
        "s", f"denoise_{sigma}", [ImagePair("gray", str(tmp_path / "gray.png"))]
    )
    degraded, clean, task, name = dataset[0]
    diff = (degraded - clean).numpy() * 255
    assert (task, name) == (f"denoise_{sigma}", "gray")
    assert abs(diff.std() - sigma) < 0.03 * sigma + 0.3
    noisy15 = PairedTestSet("s", "denoise_15", dataset.pairs)[0][0]
    assert sigma == 15 or not torch.equal(noisy15, degraded)


def make_test_folders(root) -> None:
    make_denoise(root / "test" / "denoise" / "bsd68", count=2)
    make_derain_test(root / "test" / "derain" / "Rain100L", count=2)
    make_dehaze(root / "test" / "dehaze", ids=2, per_id=1, test=True)
    make_gopro_flat(root / "test" / "deblur", count=2)
    make_lol(root / "test" / "lowlight", count=2)


def test_paper_test_set_names_and_tasks(tmp_path):
    make_test_folders(tmp_path)
    three, five = default_three_task(), default_five_task()
    three.data_root = five.data_root = str(tmp_path)
    sets3 = build_test_datasets(three)
    assert list(sets3) == ["sots", "rain100l", "cbsd68_s15", "cbsd68_s25", "cbsd68_s50"]
    sets5 = build_test_datasets(five)
    assert list(sets5) == ["sots", "rain100l", "cbsd68_s25", "gopro", "lol"]
    expected_tasks = {
        "sots": "dehaze",
        "rain100l": "derain",
        "cbsd68_s25": "denoise_25",
        "gopro": "deblur",
        "lol": "lowlight",
    }
    for name, dataset in sets5.items():
        assert dataset.task == expected_tasks[name]
        degraded, clean, task, _ = dataset[0]
        assert task == expected_tasks[name] and degraded.shape == clean.shape == (3, 32, 48)
    assert sets5["sots"][0][3] == "0001_0.8_0.04"


def test_max_images_limits_a_test_set(tmp_path):
    make_lol(tmp_path / "lol", count=3)
    cfg = DataConfig(
        data_root=str(tmp_path),
        train_tasks=[],
        test_sets=[TestSetConfig(name="lol", task="lowlight", root="lol", max_images=2)],
    )
    assert len(build_test_datasets(cfg)["lol"]) == 2


def test_release_test_noise_is_the_release_stream(tmp_path):
    """data.test_noise: release equals the release's rule written out directly:
    np.random.seed(0) once, then sigma 15, 25, 50, each over the images in os.listdir order,
    one np.random.randn draw per cropped image, clip and truncate to uint8."""
    import os

    from dfpir.data import (
        DataConfig,
        TestSetConfig,
        build_test_datasets,
        crop_to_multiple,
        read_image,
        write_image,
    )

    folder = tmp_path / "bsd68"
    rng = np.random.default_rng(5)
    for name, (h, w) in {"b.png": (37, 45), "a.png": (40, 50), "c.png": (33, 70)}.items():
        write_image(folder / name, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    saved = np.random.get_state()
    try:
        np.random.seed(0)
        expected = {}
        for sigma in (15, 25, 50):
            for name in os.listdir(folder):
                clean = crop_to_multiple(read_image(folder / name), 16)
                noise = np.random.randn(*clean.shape)
                expected[sigma, name[:-4]] = np.clip(clean + noise * sigma, 0, 255).astype(np.uint8)
    finally:
        np.random.set_state(saved)
    sets = [TestSetConfig(name=f"s{s}", task=f"denoise_{s}", root=str(folder)) for s in (15, 25, 50)]
    release = build_test_datasets(DataConfig(train_tasks=[], test_sets=sets, test_noise="release"))
    seeded = build_test_datasets(DataConfig(train_tasks=[], test_sets=sets))
    for sigma in (15, 25, 50):
        for i in range(3):
            degraded, _, _, name = release[f"s{sigma}"][i]
            got = np.round(degraded.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
            np.testing.assert_array_equal(got, expected[sigma, name])
            other = seeded[f"s{sigma}"][i][0]
            assert not torch.equal(other, degraded)
    # a prefix of a set keeps the noise its images get in the full run
    sets[1].max_images = 1
    first = build_test_datasets(DataConfig(train_tasks=[], test_sets=sets, test_noise="release"))
    assert torch.equal(first["s25"][0][0], release["s25"][0][0])
