"""PSNR/SSIM follow the evaluation protocol (scikit-image, data_range 1, RGB, clipped, float) and
the multiple-of-16 centre crop matches the release."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dfpir.data import crop_to_multiple, read_image, write_image
from dfpir.eval.metrics import compute_metrics, psnr, psnr_torch, quantize_uint8, ssim


def random_pair(seed: int, shape=(3, 40, 56)) -> tuple[torch.Tensor, torch.Tensor]:
    """A target in [0, 1] and a 'restored' image that overshoots [0, 1] (clipping matters)."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=gen)
    restored = target + 0.15 * torch.randn(shape, generator=gen)
    return restored, target


def skimage_reference(restored: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """The release's computation, written out: clip, HWC float32, scikit-image."""
    out = np.clip(restored.numpy(), 0, 1).transpose(1, 2, 0)
    ref = np.clip(target.numpy(), 0, 1).transpose(1, 2, 0)
    return (peak_signal_noise_ratio(ref, out, data_range=1),
            structural_similarity(ref, out, data_range=1, channel_axis=-1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_ssim_equal_scikit_image_on_random_pairs(seed):
    restored, target = random_pair(seed)
    assert restored.min() < 0 and restored.max() > 1  # the clip is exercised
    ref_psnr, ref_ssim = skimage_reference(restored, target)
    assert psnr(restored, target) == ref_psnr
    assert ssim(restored, target) == ref_ssim
    both = compute_metrics(restored, target)
    assert (both.psnr, both.ssim) == (ref_psnr, ref_ssim)
    # numpy HWC input gives the same numbers as the CHW tensor
    assert psnr(restored.numpy().transpose(1, 2, 0), target.numpy().transpose(1, 2, 0)) == ref_psnr
    # a batch of one is accepted
    assert psnr(restored[None], target[None]) == ref_psnr


def test_known_values():
    image = torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(3))
    assert psnr(image, image.clone()) == math.inf
    assert ssim(image, image.clone()) == pytest.approx(1.0, abs=1e-6)
    # a constant shift of 0.1 inside [0, 1]: MSE 0.01 -> exactly 20 dB
    base = np.random.default_rng(0).uniform(0.0, 0.9, (32, 48, 3))
    assert psnr(base + 0.1, base) == pytest.approx(20.0, abs=1e-9)
    assert psnr_torch(torch.from_numpy(base + 0.1).permute(2, 0, 1),
                      torch.from_numpy(base).permute(2, 0, 1)).item() == pytest.approx(20.0,
                                                                                     abs=1e-9)


def test_torch_psnr_equals_scikit_image():
    pairs = [random_pair(seed) for seed in range(4)]
    restored = torch.stack([p[0] for p in pairs])
    target = torch.stack([p[1] for p in pairs])
    values = psnr_torch(restored, target)
    assert values.shape == (4,)
    for value, (r, t) in zip(values.tolist(), pairs, strict=True):
        assert value == pytest.approx(skimage_reference(r, t)[0], abs=1e-9)
    assert psnr_torch(target[0], target[0]).item() == math.inf
    for value, (r, t) in zip(psnr_torch(restored, target, quantize=True).tolist(), pairs,
                                 strict=True):
        assert value == pytest.approx(psnr(r, t, quantize=True), abs=1e-9)


def test_quantize_matches_saved_images(tmp_path):
    restored, target = random_pair(5)
    write_image(tmp_path / "out.png", restored)  # rounds to 8 bit as eval --save-images does
    write_image(tmp_path / "ref.png", target)
    reloaded = [torch.from_numpy(read_image(tmp_path / f).astype(np.float32) / 255.0)
                for f in ("out.png", "ref.png")]
    out, ref = (x.permute(2, 0, 1) for x in reloaded)
    assert psnr(restored, target, quantize=True) == pytest.approx(psnr(out, ref), abs=1e-9)
    assert ssim(restored, target, quantize=True) == pytest.approx(ssim(out, ref), abs=1e-9)
    assert psnr(restored, target, quantize=True) != psnr(restored, target)
    levels = quantize_uint8(np.array([0.0, 0.5, 1 / 255 + 1e-4, 1.2], dtype=np.float32))
    assert np.allclose(levels * 255, [0, 128, 1, 255])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 16))


@pytest.mark.parametrize(
    ("height", "width", "out_h", "out_w", "top", "left"),
    [(481, 321, 480, 320, 0, 0), (500, 333, 496, 320, 2, 6), (320, 480, 320, 480, 0, 0)],
)
def test_crop_to_multiple_of_16_matches_the_protocol(height, width, out_h, out_w, top, left):
    """Drop h mod 16 rows, the smaller half on top; the same for columns."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    index = np.stack([rows, cols, np.zeros_like(rows)], axis=2)
    cropped = crop_to_multiple(index, 16)
    assert cropped.shape == (out_h, out_w, 3)
    assert (cropped[0, 0, 0], cropped[0, 0, 1]) == (top, left)
    tensor = crop_to_multiple(torch.from_numpy(index).permute(2, 0, 1), 16)
    assert tuple(tensor.shape) == (3, out_h, out_w)
    assert (tensor[0, 0, 0].item(), tensor[1, 0, 0].item()) == (top, left)
