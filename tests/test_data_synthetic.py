"""Synthetic degradations (change the image, reproducible from the seed) and the built-in set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from dfpir.data import (
    BUILTIN_IMAGES,
    BlurConfig,
    BuiltinTestSet,
    BuiltinTrainSet,
    HazeConfig,
    NoiseConfig,
    SyntheticConfig,
    add_gaussian_noise,
    add_haze,
    build_test_datasets,
    build_train_dataset,
    builtin_demo,
    degrade,
    load_builtin_image,
)
from dfpir.data.synthetic import line_kernel, pseudo_depth, random_motion_kernel
from dfpir.data.tasks import TASKS


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_builtin_image("astronaut")[100:196, 150:278]  # 96x128 uint8


@pytest.mark.parametrize("task", TASKS)
def test_degradation_changes_image_and_is_reproducible(photo, task):
    cfg = SyntheticConfig()
    first = degrade(photo, task, cfg, np.random.default_rng(3))
    again = degrade(photo, task, cfg, 3)
    other = degrade(photo, task, cfg, 4)
    assert first.dtype == np.uint8 and first.shape == photo.shape
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.abs(first.astype(int) - photo).mean() > 1.0
    psnr = peak_signal_noise_ratio(photo, first)
    assert 5.0 < psnr < 35.0


@pytest.mark.parametrize("task", TASKS)
def test_float_images_stay_float_in_range(photo, task):
    image = photo.astype(np.float32) / 255.0
    out = degrade(image, task, SyntheticConfig(), 0)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.min() >= 0.0 and out.max() <= 1.0 and not np.allclose(out, image)


def test_float_noise_std():
    image = np.full((128, 128, 3), 0.5, np.float32)
    noisy = add_gaussian_noise(image, NoiseConfig(sigma=25), 0)
    assert abs((noisy - image).std() * 255 - 25) < 0.5


def test_kernels_are_normalised():
    for seed in range(5):
        kernel = random_motion_kernel(BlurConfig(), seed)
        assert kernel.shape == (31, 31) and kernel.min() >= 0
        assert abs(kernel.sum() - 1) < 1e-5 and kernel.max() < 0.5
    vertical = line_kernel(9, 0)  # angle from the vertical axis
    centre = vertical.shape[1] // 2
    assert abs(vertical.sum() - 1) < 1e-5 and vertical[:, centre].sum() > 0.99
    assert (vertical[:, centre] > 0).sum() >= 9


def test_haze_follows_scattering_model_and_depth():
    image = np.full((20, 30, 3), 0.2, np.float32)
    assert np.allclose(add_haze(image, HazeConfig(), 0, depth=np.zeros((20, 30))), 0.2)
    cfg = HazeConfig(beta_min=1.0, beta_max=1.0, airlight_min=0.9, airlight_max=0.9)
    depth = np.linspace(0, 2, 30)[None, :].repeat(20, 0)
    out = add_haze(image, cfg, 0, depth=depth)
    t = np.exp(-depth)[..., None]
    expected = np.broadcast_to(0.2 * t + 0.9 * (1 - t), out.shape)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_pseudo_depth_of_a_region_matches_the_full_map():
    cfg = HazeConfig()
    full = pseudo_depth(60, 80, cfg, 7)
    crop = pseudo_depth(16, 24, cfg, 7, region=(10, 30, 60, 80))
    np.testing.assert_allclose(crop, full[10:26, 30:54], atol=1e-6)
    assert full[:5].mean() > full[-5:].mean()  # far at the top


def test_builtin_images_load_offline():
    for name in BUILTIN_IMAGES:
        image = load_builtin_image(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert max(load_builtin_image("coffee", max_side=100).shape[:2]) == 100


def test_builtin_train_items_are_fresh_random_crops():
    dataset = BuiltinTrainSet("deblur", ["chelsea"], patch_size=48)
    torch.manual_seed(0)
    a, b = dataset[0], dataset[0]
    assert a[0].shape == a[1].shape == (3, 48, 48) and a[2] == "deblur"
    assert not torch.equal(a[1], b[1])
    assert float((a[0] - a[1]).abs().mean()) > 0


def test_builtin_test_items_are_fixed_and_cropped():
    first = BuiltinTestSet("derain", ["chelsea"], seed=0)
    second = BuiltinTestSet("derain", ["chelsea"], seed=0)
    degraded, clean, task, name = first[0]
    assert (task, name, first.name) == ("derain", "chelsea", "builtin_derain")
    assert degraded.shape == (3, 288, 448)
    assert torch.equal(degraded, second[0][0]) and torch.equal(degraded, first[0][0])


def test_builtin_demo_config_builds_train_and_test_sets():
    cfg = builtin_demo()
    cfg.builtin.train_images = ["chelsea"]
    cfg.builtin.test_images = ["coffee"]
    train = build_train_dataset(cfg)
    assert train.task_counts() == {t: cfg.builtin.repeat for t in cfg.builtin.tasks}
    tests = build_test_datasets(cfg)
    assert list(tests) == [f"builtin_{t}" for t in cfg.builtin.tasks]
    assert train[0][0].shape == (3, 48, 48)
