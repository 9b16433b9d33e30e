"""Restoring one image with a trained model: whole-image (the protocol) or tiled (bounded memory).

The evaluation protocol feeds the whole image to the network at once; its memory grows with
the image (the attention maps are small, but every level keeps full-resolution activations), so
``tile > 0`` restores overlapping tiles one at a time instead and blends them with a separable
weight window that ramps linearly over the overlap on every side that has a neighbour (flat
elsewhere, so image borders keep full weight). Tiles are a multiple of 8, the network's own
padding multiple, so no tile is padded unless the image itself is smaller than a tile.

Channel attention (MDTA, CAAPM) pools over the whole input, so a tiled result is not bit-equal
to the whole-image one; with an overlap of a few tens of pixels the two agree closely (the test
checks < 0.05 dB PSNR).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..device import autocast_context
from ..errors import ConfigError

__all__ = ["blend_window", "restore", "tile_starts"]

def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap``
    pixels shared between neighbours; the last tile ends at the border. One tile (start 0)
    when the length fits in it."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_window(size: int, overlap: int, ramp_start: bool, ramp_end: bool,
                 device: torch.device | None = None) -> torch.Tensor:
    """1-D weights of one tile: a linear ramp (1/2r, 3/2r, ... < 1) over ``overlap`` pixels at
    each end that borders another tile, 1 elsewhere. Two neighbouring ramps over the same
    pixels sum to 1, so the blend is a cross-fade."""
    weights = torch.ones(size, device=device)
    ramp_len = min(overlap, size)
    if ramp_len > 0:
        ramp = (torch.arange(ramp_len, device=device, dtype=torch.float32) + 0.5) / ramp_len
        if ramp_start:
            weights[:ramp_len] = torch.minimum(weights[:ramp_len], ramp)
        if ramp_end:
            weights[size - ramp_len:] = torch.minimum(weights[size - ramp_len:], ramp.flip(0))
    return weights


def _tiles(height: int, width: int, tile: int, overlap: int
           ) -> Iterator[tuple[int, int, int, int, bool, bool, bool, bool]]:
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            yield (top, left, min(tile, height), min(tile, width),
                   i > 0, i < len(rows) - 1, j > 0, j < len(cols) - 1)


def _check_tiling(tile: int, overlap: int, multiple: int) -> int:
    if tile < 0 or overlap < 0:
        raise ConfigError(f"tile and overlap must be >= 0, got tile={tile}, overlap={overlap}")
    tile = -(-tile // multiple) * multiple  # round up to the network's padding multiple
    if overlap >= tile:
        raise ConfigError(f"the tile overlap ({overlap}) must be smaller than the tile ({tile}); "
                         "set a smaller overlap (--tile-overlap, eval.tile_overlap)")
    return tile


@torch.inference_mode()
def restore(
    model: nn.Module,
    image: torch.Tensor,
    prompt: torch.Tensor | None,
    tile: int = 0,
    overlap: int = 32,
    amp: str | None = None,
    clamp: bool = True,
) -> torch.Tensor:
    """Restore one image: ``image`` (3, H, W) or (1, 3, H, W) in [0, 1] on the model's device.

    ``prompt``: the (512,) or (1, 512) embedding, ``None`` for the Restormer baseline.
    ``tile = 0`` (default, the protocol) runs the whole image at once; ``tile > 0`` restores
    ``tile`` x ``tile`` tiles (rounded up to a multiple of 8) overlapping by ``overlap`` pixels
    and cross-fades them. ``amp`` is ``None``, "bf16" or "fp16" autocast. The output has the
    input's shape, float32, clipped to [0, 1] unless ``clamp`` is false. Put the model in eval
    mode first (DFPIR has no dropout or batch norm, so this is only hygiene).
    """
    if tile < 0 or overlap < 0:  # checked up front: a negative tile must not mean "whole image"
        raise ValueError(f"tile and overlap must be >= 0, got tile={tile}, overlap={overlap}")
    batched = image.dim() == 4
    x = image if batched else image.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"restore takes one image (3, H, W) or (1, 3, H, W), got "
                         f"{tuple(image.shape)}")
    if prompt is not None and prompt.dim() == 1:
        prompt = prompt.unsqueeze(0)
    config = getattr(model, "config", None)
    multiple = int(getattr(config, "pad_multiple", 8))
    device = x.device
    x = x.float()
    with autocast_context(device, amp):
        if tile <= 0 or (x.shape[-2] <= tile and x.shape[-1] <= tile):
            out = model(x, prompt).float()
        else:
            out = _restore_tiled(model, x, prompt, _check_tiling(tile, overlap, multiple),
                                 overlap)
    if clamp:
        out = out.clamp_(0.0, 1.0)
    return out if batched else out[0]


def _restore_tiled(model: nn.Module, x: torch.Tensor, prompt: torch.Tensor | None, tile: int,
                   overlap: int) -> torch.Tensor:
    _, channels, height, width = x.shape
    out = torch.zeros((1, channels, height, width), device=x.device, dtype=torch.float32)
    total = torch.zeros((1, 1, height, width), device=x.device, dtype=torch.float32)
    for top, left, th, tw, up, down, before, after in _tiles(height, width, tile, overlap):
        piece = model(x[..., top:top + th, left:left + tw], prompt).float()
        weight = (blend_window(th, overlap, up, down, x.device)[:, None]
                  * blend_window(tw, overlap, before, after, x.device)[None, :])
        out[..., top:top + th, left:left + tw] += piece * weight
        total[..., top:top + th, left:left + tw] += weight
    return out / total
