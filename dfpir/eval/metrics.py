"""PSNR and SSIM exactly as the evaluation protocol computes them, plus a fast torch PSNR.

The protocol (the release's ``compute_psnr_ssim``): clip the output (and the target) to [0, 1],
then scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity`` with
``data_range=1`` on the full RGB image (SSIM over the channel axis, default 7x7 uniform window),
on the float32 values, *not* quantised to uint8 first. ``quantize=True`` rounds both images to
8-bit first, which is what a metric computed on saved PNG files would see.

``psnr_torch`` computes the same PSNR on the device without a copy to numpy (for validation
during training); it squares the float differences in the input precision and averages in
float64 just as scikit-image does, so the two agree to ~1e-10 dB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = [
    "ImageMetrics",
    "compute_metrics",
    "psnr",
    "psnr_torch",
    "quantize_uint8",
    "ssim",
    "to_metric_array",
]


def to_metric_array(image: torch.Tensor | np.ndarray, quantize: bool = False) -> np.ndarray:
    """An image as the protocol measures it: numpy HxWxC float, clipped to [0, 1].

    Accepts a torch tensor CxHxW or 1xCxHxW (any device), or a numpy array HxW / HxWxC; uint8
    and uint16 arrays are scaled to [0, 1]. Float inputs keep their precision (float32 in the
    release), since scikit-image computes in the input's precision. ``quantize`` rounds to
    8-bit levels (k / 255) as a saved-and-reloaded image would be.
    """
    if isinstance(image, torch.Tensor):
        tensor = image.detach()
        if tensor.dim() == 4:
            if tensor.shape[0] != 1:
                raise ValueError(f"expected one image, got a batch of {tensor.shape[0]}")
            tensor = tensor[0]
        if tensor.dim() != 3:
            raise ValueError(f"expected a CxHxW tensor, got shape {tuple(image.shape)}")
        if not tensor.is_floating_point() or tensor.dtype in (torch.float16, torch.bfloat16):
            tensor = tensor.float()
        array = tensor.cpu().numpy().transpose(1, 2, 0)
    else:
        array = np.asarray(image)
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / np.float32(255.0)
        elif array.dtype == np.uint16:
            array = array.astype(np.float32) / np.float32(65535.0)
        elif array.dtype.kind != "f":
            raise ValueError(f"expected a float, uint8 or uint16 image, got {array.dtype}")
        elif array.dtype == np.float16:
            array = array.astype(np.float32)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ValueError(f"expected an HxW or HxWxC array, got shape {array.shape}")
    array = np.clip(array, 0.0, 1.0)
    return quantize_uint8(array) if quantize else array


def quantize_uint8(array: np.ndarray) -> np.ndarray:
    """Round a [0, 1] float array to the 8-bit levels k / 255 (as ``write_image`` then reading
    back with ``to_tensor`` would give), keeping its float dtype."""
    dtype = array.dtype
    return (np.round(np.clip(array, 0.0, 1.0) * dtype.type(255.0)) / dtype.type(255.0)).astype(
        dtype
    )


def _pair(restored, target, quantize: bool) -> tuple[np.ndarray, np.ndarray]:
    out = to_metric_array(restored, quantize)
    ref = to_metric_array(target, quantize)
    if out.shape != ref.shape:
        raise ValueError(f"restored image {out.shape} and target {ref.shape} differ in shape")
    return out, ref


def psnr(restored: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
         quantize: bool = False) -> float:
    """PSNR in dB (data_range 1) on the full RGB image, as scikit-image computes it; ``inf``
    for identical images."""
    out, ref = _pair(restored, target, quantize)
    if np.array_equal(out, ref):
        return math.inf
    return float(peak_signal_noise_ratio(ref, out, data_range=1))


def ssim(restored: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
         quantize: bool = False) -> float:
    """SSIM (data_range 1, default 7x7 window, averaged over the RGB channels) as scikit-image
    computes it."""
    out, ref = _pair(restored, target, quantize)
    channel_axis = -1 if out.shape[-1] > 1 else None
    if channel_axis is None:
        out, ref = out[..., 0], ref[..., 0]
    return float(structural_similarity(ref, out, data_range=1, channel_axis=channel_axis))


@dataclass(frozen=True)
class ImageMetrics:
    """PSNR (dB) and SSIM of one restored image."""

    psnr: float
    ssim: float


def compute_metrics(restored: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
                    quantize: bool = False) -> ImageMetrics:
    """Both protocol metrics of one image (converted to numpy once)."""
    out, ref = _pair(restored, target, quantize)
    value = math.inf if np.array_equal(out, ref) else float(
        peak_signal_noise_ratio(ref, out, data_range=1)
    )
    if out.shape[-1] > 1:
        structure = structural_similarity(ref, out, data_range=1, channel_axis=-1)
    else:
        structure = structural_similarity(ref[..., 0], out[..., 0], data_range=1)
    return ImageMetrics(value, float(structure))


def psnr_torch(restored: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
               quantize: bool = False) -> torch.Tensor:
    """Per-image PSNR (dB) of (B, C, H, W) or (C, H, W) tensors, on their device.

    Clips both to [0, data_range] like the protocol, squares the differences in the input
    precision and averages in float64 (as scikit-image), so it equals ``psnr`` up to rounding.
    Returns a float64 tensor of shape (B,) (or a 0-dim tensor for one CxHxW image); ``inf``
    where the images are identical.
    """
    if restored.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(restored.shape)} vs {tuple(target.shape)}")
    single = restored.dim() == 3
    if single:
        restored, target = restored[None], target[None]
    if restored.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) or (C, H, W), got {tuple(restored.shape)}")
    dtype = restored.dtype if restored.dtype in (torch.float32, torch.float64) else torch.float32
    out = restored.detach().to(dtype).clamp(0, data_range)
    ref = target.detach().to(dtype).clamp(0, data_range)
    if quantize:
        levels = 255.0 / data_range
        out = torch.round(out * levels) / levels
        ref = torch.round(ref * levels) / levels
    mse = ((out - ref) ** 2).to(torch.float64).flatten(1).mean(1)
    value = 10.0 * torch.log10(data_range**2 / mse)  # mse == 0 gives inf
    return value[0] if single else value
