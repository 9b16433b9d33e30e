"""Whole-image and tiled inference: the blending arithmetic, and tiled ~ whole on a real model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from torch import nn

from dfpir.eval.metrics import psnr
from dfpir.models import DFPIR, DFPIRConfig
from dfpir.restore.inference import blend_window, restore, tile_starts


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and two threads on a busy two-core machine can
    be ten times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def texture(gen: torch.Generator, batch: int, height: int, width: int) -> torch.Tensor:
    """A stationary smooth colour texture in [0, 1]."""
    base = torch.rand(batch, 3, height + 4, width + 4, generator=gen)
    return ((F.avg_pool2d(base, 5, 1) - 0.5) * 4 + 0.5).clamp(0, 1)


def briefly_trained_denoiser(gen: torch.Generator, prompt: torch.Tensor) -> DFPIR:
    """A tiny DFPIR after 30 Adam steps of denoising: unlike a random one, whose deep features
    depend on the whole input, it behaves like a restoration network (mostly local)."""
    model = DFPIR(tiny_config())
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(30):
        clean = texture(gen, 2, 32, 32)
        noisy = (clean + 0.1 * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
        loss = (model(noisy, prompt) - clean).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def test_tiled_matches_whole_within_0p05_db():
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randn(512, generator=gen)
    model = briefly_trained_denoiser(gen, prompt)
    clean = texture(gen, 1, 96, 128)[0]
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=gen)).clamp(0, 1)

    whole = restore(model, noisy, prompt)
    tiled = restore(model, noisy, prompt, tile=48, overlap=16)
    seams = restore(model, noisy, prompt, tile=48, overlap=0)  # tiles butt-joined, no blend

    # the assertion is meaningful: the model really changes the image (it is not an identity),
    # the image is really cut into 3 x 4 tiles, and the tiles differ from the whole-image pass
    assert psnr(whole, noisy) < 36.0
    assert len(tile_starts(96, 48, 16)) * len(tile_starts(128, 48, 16)) == 12
    assert not torch.allclose(tiled, whole, atol=1e-4)
    # the protocol's number is preserved ...
    assert abs(psnr(tiled, clean) - psnr(whole, clean)) < 0.05
    # ... because the overlap and blending hide the tile borders, which plain tiling does not
    assert psnr(tiled, whole) > psnr(seams, whole) + 3.0
    assert psnr(tiled, whole) > 40.0


class PixelwiseModel(nn.Module):
    """A per-pixel (1x1) network: any tiling must reproduce the whole-image result exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.config = DFPIRConfig(dim=8, heads=[1, 1, 1, 1])

    def forward(self, x: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


@pytest.mark.parametrize(("tile", "overlap"), [(48, 16), (40, 8), (21, 5), (64, 0)])
def test_tiles_cover_and_blend_exactly(tile, overlap):
    model = PixelwiseModel()
    image = torch.rand(3, 70, 101)
    whole = restore(model, image, None)
    tiled = restore(model, image, None, tile=tile, overlap=overlap)
    assert tiled.shape == image.shape
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)


def test_tile_starts_and_window():
    assert tile_starts(96, 48, 16) == [0, 32, 48]
    assert tile_starts(40, 48, 16) == [0]
    starts = tile_starts(1000, 256, 32)
    assert starts[0] == 0 and starts[-1] == 1000 - 256
    assert all(b - a <= 256 - 32 for a, b in zip(starts, starts[1:], strict=False))
    window = blend_window(48, 16, True, True)
    assert window.min() > 0 and window.max() == 1
    # two neighbouring ramps over the same 16 pixels cross-fade: they sum to one
    rising, falling = blend_window(48, 16, True, False), blend_window(48, 16, False, True)
    torch.testing.assert_close(rising[:16] + falling[-16:], torch.ones(16))
    assert torch.equal(blend_window(48, 16, False, False), torch.ones(48))


def test_restore_shapes_clamp_and_errors():
    model = DFPIR(tiny_config()).eval()
    baseline = DFPIR(tiny_config(dgcpm=False, caapm=False)).eval()
    image = torch.rand(3, 37, 53)  # not a multiple of 8: the model pads and crops back
    prompt = torch.randn(512)
    out = restore(model, image, prompt)
    assert out.shape == image.shape and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert restore(model, image[None], prompt[None]).shape == (1, 3, 37, 53)
    assert restore(baseline, image, None, tile=20, overlap=4).shape == image.shape
    assert restore(model, image[:, :16, :16], prompt, amp="bf16").shape == (3, 16, 16)
    with pytest.raises(ValueError, match="overlap"):
        restore(model, image, prompt, tile=16, overlap=16)
    with pytest.raises(ValueError, match="one image"):
        restore(model, torch.rand(2, 3, 16, 16), prompt)
    with pytest.raises(ValueError, match="amp"):
        restore(model, image, prompt, amp="int8")
