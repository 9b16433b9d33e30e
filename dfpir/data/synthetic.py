"""Synthetic degradations for any clean photo: noise, rain, haze, motion blur, low light.

Every function takes an image laid out HxWxC (or HxW) either as uint8 or as float in [0, 1],
returns the same dtype and shape (uint8 results are rounded), and draws all its randomness from
``rng`` (a ``numpy.random.Generator`` or an int seed): the same seed gives the same output.
Parameters live in dataclass configs whose ranges are sampled once per call. Defaults are chosen
so that degraded inputs sit in the PSNR range of the benchmarks (see the README, "Data").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tasks import noise_sigma, task_family

Region = tuple[int, int, int, int]  # (top, left, full_height, full_width)


@dataclass
class NoiseConfig:
    """Additive white Gaussian noise; ``sigma`` on the 0..255 scale."""

    sigma: float = 25.0


@dataclass
class RainConfig:
    """Rain streaks: random seed points smeared along one direction and added to the image."""

    density_min: float = 0.0015  # fraction of pixels that start a streak
    density_max: float = 0.004  # upper end of density_min's range
    length_min: float = 10.0  # streak length in pixels
    length_max: float = 24.0  # upper end of length_min's range
    angle_min: float = -20.0  # degrees from vertical, one angle per image
    angle_max: float = 20.0  # upper end of angle_min's range
    brightness_min: float = 0.25  # added intensity along a streak
    brightness_max: float = 0.5  # upper end of brightness_min's range
    thickness: float = 0.5  # Gaussian sigma (pixels) that widens the streaks


@dataclass
class HazeConfig:
    """Atmospheric scattering I = J t + A (1 - t), t = exp(-beta d).

    Without a depth map, d is a pseudo-depth in [0, 1]: far at the top, near at the bottom,
    plus smooth random variation.
    """

    beta_min: float = 0.3  # scattering coefficient, lower end
    beta_max: float = 0.8  # scattering coefficient, upper end
    airlight_min: float = 0.7  # atmospheric light, lower end
    airlight_max: float = 0.9  # atmospheric light, upper end
    depth_near: float = 0.15  # pseudo-depth of the bottom row
    depth_far: float = 1.0  # pseudo-depth of the top row
    depth_variation: float = 0.15  # amplitude of the smooth random part


@dataclass
class BlurConfig:
    """Motion blur with a random normalised kernel: a curved camera trajectory or a line."""

    kind: str = "trajectory"  # "trajectory" or "line"
    length_min: float = 6.0  # path length in pixels
    length_max: float = 16.0  # upper end of length_min's range
    curvature: float = 0.25  # std of the direction change per step (radians), trajectory only
    kernel_size: int = 31  # odd; paths longer than the kernel are clipped to it


@dataclass
class LowLightConfig:
    """Dark exposure: scale * J ** gamma, then Poisson-Gaussian (shot + read) sensor noise."""

    scale_min: float = 0.3  # exposure scale, lower end
    scale_max: float = 0.6  # exposure scale, upper end
    gamma_min: float = 1.1  # gamma, lower end
    gamma_max: float = 1.5  # gamma, upper end
    photons_min: float = 300.0  # photons at full scale: smaller means stronger shot noise
    photons_max: float = 1500.0  # upper end of photons_min's range
    read_noise_min: float = 0.002  # std of the read noise, [0, 1] scale
    read_noise_max: float = 0.008  # upper end of read_noise_min's range


@dataclass
class SyntheticConfig:
    """Parameters of every synthetic degradation (noise sigma comes from the task name)."""

    rain: RainConfig = field(default_factory=RainConfig)
    haze: HazeConfig = field(default_factory=HazeConfig)
    blur: BlurConfig = field(default_factory=BlurConfig)
    lowlight: LowLightConfig = field(default_factory=LowLightConfig)


def as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    """``rng`` itself, or a new generator seeded with the int ``rng``."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _to_float(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return img.astype(np.float32, copy=False)


def _like(result: np.ndarray, reference: np.ndarray) -> np.ndarray:
    result = np.clip(result, 0.0, 1.0)
    if reference.dtype == np.uint8:
        return np.round(result * 255.0).astype(np.uint8)
    return result.astype(reference.dtype, copy=False)


def _per_pixel(values: np.ndarray, img: np.ndarray) -> np.ndarray:
    """Broadcast an HxW map against an HxW or HxWxC image."""
    return values[:, :, None] if img.ndim == 3 else values


def add_gaussian_noise(
    img: np.ndarray, cfg: NoiseConfig, rng: np.random.Generator | int
) -> np.ndarray:
    """Gaussian noise of std ``cfg.sigma`` / 255.

    For uint8 input this is exactly the release's rule: clip(x + sigma N, 0, 255), truncated.
    """
    rng = as_generator(rng)
    noise = rng.standard_normal(img.shape)
    if img.dtype == np.uint8:
        return np.clip(img.astype(np.float64) + noise * cfg.sigma, 0, 255).astype(np.uint8)
    return _like(_to_float(img) + (noise * (cfg.sigma / 255.0)).astype(np.float32), img)


def _splat(points: np.ndarray, size: int) -> np.ndarray:
    """Accumulate (y, x) points, centred on the kernel, with bilinear weights; sums to 1."""
    kernel = np.zeros((size, size), dtype=np.float64)
    coords = points + (size - 1) / 2.0
    coords = coords[(coords >= 0).all(axis=1) & (coords <= size - 1).all(axis=1)]
    y0 = np.floor(coords[:, 0]).astype(int)
    x0 = np.floor(coords[:, 1]).astype(int)
    dy, dx = coords[:, 0] - y0, coords[:, 1] - x0
    y1, x1 = np.minimum(y0 + 1, size - 1), np.minimum(x0 + 1, size - 1)
    np.add.at(kernel, (y0, x0), (1 - dy) * (1 - dx))
    np.add.at(kernel, (y0, x1), (1 - dy) * dx)
    np.add.at(kernel, (y1, x0), dy * (1 - dx))
    np.add.at(kernel, (y1, x1), dy * dx)
    total = kernel.sum()
    if total <= 0:
        kernel[size // 2, size // 2] = 1.0
        total = 1.0
    return (kernel / total).astype(np.float32)


def line_kernel(length: float, angle_degrees: float, size: int | None = None) -> np.ndarray:
    """A normalised straight-line kernel; angle measured from the vertical axis."""
    size = size or int(np.ceil(length)) // 2 * 2 + 3
    theta = np.deg2rad(angle_degrees)
    steps = np.linspace(-length / 2.0, length / 2.0, max(2, int(np.ceil(length * 4))))
    points = np.stack([steps * np.cos(theta), steps * np.sin(theta)], axis=1)
    return _splat(points, size)


def random_motion_kernel(cfg: BlurConfig, rng: np.random.Generator | int) -> np.ndarray:
    """A random normalised blur kernel (``cfg.kernel_size`` square) along a camera path."""
    rng = as_generator(rng)
    if cfg.kernel_size % 2 == 0 or cfg.kernel_size < 3:
        raise ValueError(f"blur kernel_size must be odd and >= 3, got {cfg.kernel_size}")
    length = rng.uniform(cfg.length_min, cfg.length_max)
    direction = rng.uniform(0.0, 2.0 * np.pi)
    steps = 64
    turns = rng.normal(0.0, cfg.curvature, steps) if cfg.kind == "trajectory" else np.zeros(steps)
    if cfg.kind not in ("trajectory", "line"):
        raise ValueError(f"blur kind must be 'trajectory' or 'line', got {cfg.kind!r}")
    angles = direction + np.cumsum(turns)
    moves = np.stack([np.sin(angles), np.cos(angles)], axis=1) * (length / steps)
    path = np.concatenate([np.zeros((1, 2)), np.cumsum(moves, axis=0)])
    # sample densely between path vertices so the kernel has no gaps
    fractions = np.linspace(0.0, 1.0, 4, endpoint=False)[:, None, None]
    dense = (path[None, :-1] + (path[None, 1:] - path[None, :-1]) * fractions).reshape(-1, 2)
    dense = np.concatenate([dense, path[-1:]])
    dense -= (dense.min(axis=0) + dense.max(axis=0)) / 2.0
    return _splat(dense, cfg.kernel_size)


def convolve_image(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel of a float HxW(xC) image with ``kernel``, reflecting at borders."""
    from scipy.signal import fftconvolve  # imported lazily: scipy.signal takes ~1 s to import

    radius_y, radius_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    pads = [(radius_y, radius_y), (radius_x, radius_x)] + [(0, 0)] * (img.ndim - 2)
    padded = np.pad(img, pads, mode="reflect" if min(img.shape[:2]) > 1 else "edge")
    full_kernel = kernel if img.ndim == 2 else kernel[:, :, None]
    out = fftconvolve(padded, full_kernel, mode="valid", axes=(0, 1))
    return out.astype(np.float32)


def add_motion_blur(
    img: np.ndarray,
    cfg: BlurConfig,
    rng: np.random.Generator | int,
    kernel: np.ndarray | None = None,
) -> np.ndarray:
    """Blur with ``kernel`` or with a random one from ``random_motion_kernel``."""
    kernel = random_motion_kernel(cfg, rng) if kernel is None else kernel
    return _like(convolve_image(_to_float(img), kernel), img)


def add_rain(img: np.ndarray, cfg: RainConfig, rng: np.random.Generator | int) -> np.ndarray:
    """Add bright rain streaks: sparse seeds smeared along one random direction."""
    from scipy.ndimage import gaussian_filter
    from scipy.signal import fftconvolve

    rng = as_generator(rng)
    height, width = img.shape[:2]
    density = rng.uniform(cfg.density_min, cfg.density_max)
    length = rng.uniform(cfg.length_min, cfg.length_max)
    angle = rng.uniform(cfg.angle_min, cfg.angle_max)
    seeds = rng.random((height, width)) < density
    brightness = rng.uniform(cfg.brightness_min, cfg.brightness_max, (height, width))
    kernel = line_kernel(length, angle)
    streaks = fftconvolve(seeds * brightness, kernel, mode="same") * (kernel.sum() / kernel.max())
    if cfg.thickness > 0:
        streaks = gaussian_filter(streaks, cfg.thickness)
    streaks = np.clip(streaks, 0.0, 1.0).astype(np.float32)
    return _like(_to_float(img) + _per_pixel(streaks, img), img)


def pseudo_depth(
    height: int,
    width: int,
    cfg: HazeConfig,
    rng: np.random.Generator | int,
    region: Region | None = None,
) -> np.ndarray:
    """A plausible depth map in [0, 1]: a vertical gradient plus smooth random waves.

    ``region`` = (top, left, full_height, full_width) evaluates the map of a full image on a
    crop of it, so a training crop sees the same depth as the full test image would. The random
    draws do not depend on the size, so one seed gives one scene whatever the region.
    """
    rng = as_generator(rng)
    top, left, full_height, full_width = region or (0, 0, height, width)
    y = ((top + np.arange(height) + 0.5) / full_height)[:, None]
    x = ((left + np.arange(width) + 0.5) / full_width)[None, :]
    depth = cfg.depth_far + (cfg.depth_near - cfg.depth_far) * y + np.zeros_like(x)
    waves = 6
    freq_y = rng.uniform(-2.5, 2.5, waves)
    freq_x = rng.uniform(-2.5, 2.5, waves)
    phase = rng.uniform(0.0, 2.0 * np.pi, waves)
    for fy, fx, ph in zip(freq_y, freq_x, phase, strict=True):
        depth = depth + cfg.depth_variation / np.sqrt(waves) * np.cos(
            2.0 * np.pi * (fy * y + fx * x) + ph
        )
    return np.clip(depth, 0.0, 1.0).astype(np.float32)


def add_haze(
    img: np.ndarray,
    cfg: HazeConfig,
    rng: np.random.Generator | int,
    depth: np.ndarray | None = None,
    region: Region | None = None,
) -> np.ndarray:
    """Haze by the atmospheric scattering model with a random beta and grey airlight A.

    ``depth`` (HxW, same units as 1 / beta) is used when given, else ``pseudo_depth``.
    """
    rng = as_generator(rng)
    beta = rng.uniform(cfg.beta_min, cfg.beta_max)
    airlight = rng.uniform(cfg.airlight_min, cfg.airlight_max)
    if depth is None:
        depth = pseudo_depth(img.shape[0], img.shape[1], cfg, rng, region)
    elif depth.shape != img.shape[:2]:
        raise ValueError(f"depth map shape {depth.shape} does not match image {img.shape[:2]}")
    transmission = _per_pixel(np.exp(-beta * depth.astype(np.float32)), img)
    hazy = _to_float(img) * transmission + airlight * (1.0 - transmission)
    return _like(hazy, img)


def add_low_light(
    img: np.ndarray, cfg: LowLightConfig, rng: np.random.Generator | int
) -> np.ndarray:
    """Darken (scale * J ** gamma) and add Poisson shot noise and Gaussian read noise."""
    rng = as_generator(rng)
    scale = rng.uniform(cfg.scale_min, cfg.scale_max)
    gamma = rng.uniform(cfg.gamma_min, cfg.gamma_max)
    photons = rng.uniform(cfg.photons_min, cfg.photons_max)
    read_noise = rng.uniform(cfg.read_noise_min, cfg.read_noise_max)
    dark = scale * np.power(_to_float(img), gamma)
    shot = rng.poisson(dark.astype(np.float64) * photons) / photons
    noisy = shot + rng.normal(0.0, read_noise, dark.shape)
    return _like(noisy.astype(np.float32), img)


def degrade(
    img: np.ndarray,
    task: str,
    cfg: SyntheticConfig,
    rng: np.random.Generator | int,
    region: Region | None = None,
) -> np.ndarray:
    """Apply the synthetic degradation of ``task`` (a registered task name) to ``img``.

    ``region`` only matters for haze (see ``pseudo_depth``).
    """
    family = task_family(task)
    if family == "denoise":
        return add_gaussian_noise(img, NoiseConfig(sigma=float(noise_sigma(task))), rng)
    if family == "derain":
        return add_rain(img, cfg.rain, rng)
    if family == "dehaze":
        return add_haze(img, cfg.haze, rng, region=region)
    if family == "deblur":
        return add_motion_blur(img, cfg.blur, rng)
    return add_low_light(img, cfg.lowlight, rng)
