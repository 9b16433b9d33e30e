"""Restormer building blocks (Zamir et al., CVPR 2022), the backbone of DFPIR.

Parameter names follow the Restormer release so that its checkpoints and DFPIR's load without
renaming the backbone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map, per pixel.

    ``kind="WithBias"`` is the standard LayerNorm (weight and bias); ``"BiasFree"`` divides by the
    standard deviation without subtracting the mean. Both use the biased variance and eps 1e-5,
    as the release. Runs fastest on channels_last inputs, where the channel axis is contiguous.
    """

    def __init__(self, dim: int, kind: str = "WithBias") -> None:
        super().__init__()
        if kind not in ("WithBias", "BiasFree"):
            raise ValueError(f"LayerNorm kind must be 'WithBias' or 'BiasFree', got {kind!r}")
        self.body = _LayerNormBody(dim, with_bias=kind == "WithBias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _LayerNormBody(nn.Module):
    """Holds the affine parameters under ``body.weight``/``body.bias`` as the release names them."""

    def __init__(self, dim: int, with_bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is not None:
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, eps=1e-5)
        var = x.var(-1, keepdim=True, unbiased=False)
        return x * torch.rsqrt(var + 1e-5) * self.weight


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: gelu(x1) * x2 after a depthwise 3x3 conv."""

    def __init__(self, dim: int, expansion: float = 2.66, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias
        )
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, heads*c, H, W) -> (B, heads, c, H*W)."""
    b, c, h, w = x.shape
    return x.reshape(b, heads, c // heads, h * w)


def merge_heads(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, heads, c, H*W) -> (B, heads*c, H, W)."""
    b, heads, c, _ = x.shape
    return x.reshape(b, heads * c, h, w)


def channel_attention_logits(
    q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor
) -> torch.Tensor:
    """Transposed (channel x channel) attention logits of L2-normalised q and k, per head."""
    q = F.normalize(q, dim=-1)
    k = F.normalize(k, dim=-1)
    return (q @ k.transpose(-2, -1)) * temperature


class MDTA(nn.Module):
    """Multi-Dconv-head transposed self-attention: attention across channels, not pixels."""

    def __init__(self, dim: int, heads: int, bias: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(
            dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias
        )
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        q, k, v = (split_heads(t, self.heads) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, 1))
        attn = channel_attention_logits(q, k, self.temperature).softmax(dim=-1)
        return self.project_out(merge_heads(attn @ v, h, w))


class TransformerBlock(nn.Module):
    """x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_expansion: float = 2.66,
        bias: bool = False,
        norm: str = "WithBias",
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, norm)
        self.attn = MDTA(dim, heads, bias)
        self.norm2 = LayerNorm(dim, norm)
        self.ffn = GDFN(dim, ffn_expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """3x3 convolution from the image to the first feature level."""

    def __init__(self, in_channels: int = 3, dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """Halve the resolution, double the channels: 3x3 conv C -> C/2, then PixelUnshuffle(2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim // 2, kernel_size=3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double the resolution, halve the channels: 3x3 conv C -> 2C, then PixelShuffle(2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim * 2, kernel_size=3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def transformer_stage(
    dim: int, heads: int, depth: int, ffn_expansion: float, bias: bool, norm: str
) -> nn.Sequential:
    """``depth`` transformer blocks at one resolution."""
    return nn.Sequential(
        *[TransformerBlock(dim, heads, ffn_expansion, bias, norm) for _ in range(depth)]
    )
