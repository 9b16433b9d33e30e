"""Hand-built image statistics that tell the degradations apart, computed on crops.

Each statistic targets one cue a person would use:

- brightness and contrast (luminance mean, spread, percentiles): low light is dark, haze is
  bright and flat;
- the dark channel and the saturation (haze lifts the darkest channel and washes colours out);
- the noise level, by Immerkaer's (1996) Laplacian-difference estimator (mean and median of the
  absolute response of a kernel that cancels planes and gradients), in log scale, so sigma 15,
  25 and 50 land at distinct values;
- fine against coarse gradient energy (motion blur removes the fine scales, noise adds them);
- the skewness, tails and anisotropy of a high-pass residual (rain adds thin, bright, oriented
  streaks: a positive skew and a strong preference for one direction).

The features are computed in torch on a batch of crops (B, 3, S, S) in [0, 1]; they do not
depend on the crop's position and, except the anisotropy's sign (dropped), not on 90-degree
rotations, which the training crops receive as augmentation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["FEATURE_NAMES", "grid_crops", "image_features"]

FEATURE_NAMES: tuple[str, ...] = (
    "y_mean", "y_std", "y_p01", "y_p10", "y_p50", "y_p90", "y_p99",
    "dark_mean", "dark_p10", "sat_mean", "sat_p90",
    "noise_mean", "noise_median", "noise_rgb_median",
    "grad1", "grad2", "grad4", "fine_coarse_1_2", "fine_coarse_2_4", "grad_p99",
    "hp_skew", "hp_kurt", "hp_pos_tail", "hp_neg_tail", "anisotropy", "hp_energy",
)

_EPS = 1e-4
_QUANTILE_SAMPLES = 2048


def _quantiles(x: torch.Tensor, qs: list[float]) -> torch.Tensor:
    """(B, len(qs)) quantiles (nearest rank) of the flattened (B, ...) tensor, from an evenly
    strided subset of at most ``_QUANTILE_SAMPLES`` values (sorting every pixel is slow)."""
    flat = x.reshape(x.shape[0], -1)
    flat = flat[:, :: max(1, flat.shape[1] // _QUANTILE_SAMPLES)]
    ranks = torch.tensor([round(q * (flat.shape[1] - 1)) for q in qs])
    return torch.sort(flat, dim=1).values[:, ranks]


def _log(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x.clamp_min(_EPS))


def _grad_energy(y: torch.Tensor) -> torch.Tensor:
    """Mean absolute finite difference (both directions) of (B, 1, H, W)."""
    dx = (y[..., :, 1:] - y[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    dy = (y[..., 1:, :] - y[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return (dx + dy) / 2


def _box(y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Mean over a height x width window (odd sizes), replicate-padded: same size as ``y``."""
    padded = F.pad(y, (width // 2, width // 2, height // 2, height // 2), mode="replicate")
    return F.avg_pool2d(padded, (height, width), stride=1)


def _laplace_diff(y: torch.Tensor) -> torch.Tensor:
    """|y * [[1,-2,1],[-2,4,-2],[1,-2,1]]| / 6 (valid part), as two second differences."""
    d = y[..., :, :-2] - 2 * y[..., :, 1:-1] + y[..., :, 2:]
    return (d[..., :-2, :] - 2 * d[..., 1:-1, :] + d[..., 2:, :]).abs() / 6.0


@torch.no_grad()
def image_features(crops: torch.Tensor) -> torch.Tensor:
    """(B, len(FEATURE_NAMES)) statistics of a batch of RGB crops (B, 3, S, S) in [0, 1]."""
    if crops.dim() != 4 or crops.shape[1] != 3:
        raise ValueError(f"expected crops (B, 3, S, S), got {tuple(crops.shape)}")
    x = crops.float().clamp(0.0, 1.0)
    batch = x.shape[0]
    y = x.mean(dim=1, keepdim=True)
    brightest, darkest = x.max(dim=1).values, x.min(dim=1).values
    saturation = (brightest - darkest) / (brightest + 0.05)
    feats = [y.mean(dim=(1, 2, 3)), y.std(dim=(1, 2, 3)),
             _quantiles(y, [0.01, 0.10, 0.50, 0.90, 0.99]),
             darkest.mean(dim=(1, 2)), _quantiles(darkest, [0.10])[:, 0],
             saturation.mean(dim=(1, 2)), _quantiles(saturation, [0.90])[:, 0]]

    response, response_rgb = _laplace_diff(y), _laplace_diff(x)
    feats += [_log(response.mean(dim=(1, 2, 3)) * math.sqrt(math.pi / 2)),
              _log(_quantiles(response, [0.5])[:, 0] / 0.6745),
              _log(_quantiles(response_rgb.reshape(batch, -1), [0.5])[:, 0] / 0.6745)]

    y2, y4 = F.avg_pool2d(y, 2), F.avg_pool2d(y, 4)
    g1, g2, g4 = _grad_energy(y), _grad_energy(y2), _grad_energy(y4)
    magnitude = (y[..., :-1, 1:] - y[..., :-1, :-1]).abs() + (y[..., 1:, :-1] - y[..., :-1, :-1]).abs()
    feats += [_log(g1), _log(g2), _log(g4), _log(g1) - _log(g2), _log(g2) - _log(g4),
              _log(_quantiles(magnitude, [0.99])[:, 0])]

    high = y - _box(y, 7, 7)
    centred = high - high.mean(dim=(1, 2, 3), keepdim=True)
    std = centred.std(dim=(1, 2, 3)).clamp_min(_EPS)
    skew = (centred ** 3).mean(dim=(1, 2, 3)) / std ** 3
    kurt = (centred ** 4).mean(dim=(1, 2, 3)) / std ** 4
    tails = _quantiles(centred, [0.005, 0.995])
    across = (y - _box(y, 1, 9)).abs().mean(dim=(1, 2, 3))  # high-pass across rows
    along = (y - _box(y, 9, 1)).abs().mean(dim=(1, 2, 3))  # high-pass across columns
    feats += [skew.clamp(-20, 20), _log(kurt), _log(tails[:, 1]), _log(-tails[:, 0]),
              (_log(across) - _log(along)).abs(), _log(std)]
    out = torch.cat([f.reshape(batch, -1) for f in feats], dim=1)
    return torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def grid_crops(image: np.ndarray | torch.Tensor, size: int, max_crops: int) -> torch.Tensor:
    """Up to ``max_crops`` crops of ``size`` x ``size`` spread evenly over an image (HxWx3
    numpy or 3xHxW torch, values in [0, 1]); the whole image when it is smaller than a crop."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    image = image.float().cpu()
    if image.dim() == 4:
        image = image[0]
    _, height, width = image.shape
    if height < size or width < size:
        side = min(height, width)
        return image[None, :, :side, :side]
    rows = max(1, math.ceil(height / size))
    cols = max(1, math.ceil(width / size))
    tops = np.linspace(0, height - size, rows).round().astype(int)
    lefts = np.linspace(0, width - size, cols).round().astype(int)
    spots = [(t, left) for t in tops for left in lefts]
    if len(spots) > max_crops > 0:
        keep = np.linspace(0, len(spots) - 1, max_crops).round().astype(int)
        spots = [spots[i] for i in keep]
    return torch.stack([image[:, t:t + size, left:left + size] for t, left in spots])
