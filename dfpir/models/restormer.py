"""Restormer building blocks (Zamir et al., CVPR 2022), the backbone of DFPIR.

Parameter names follow the Restormer release so that its checkpoints and DFPIR's load without
renaming the backbone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import low_precision


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
        if x.device.type == "cpu" and is_channels_last(x):
            return self._forward_cpu(x)
        x1, x2 = self.dwconv(pointwise(self.project_in, x)).chunk(2, dim=1)
        return pointwise(self.project_out, _gate(x1, x2))

    def _forward_cpu(self, x: torch.Tensor) -> torch.Tensor:
        """The same function with the hidden width padded by zero channels to a multiple of 16.

        The release's widths (2 x 255, 2 x 510, ...) make the CPU GEMM and depthwise kernels
        several times slower than their neighbours (row strides near a power of two alias in
        the caches). The padded channels have zero weights, so they hold exact zeros, gelu(0) * 0
        = 0, and they add exact zeros to the output: the result is the unpadded one.
        """
        hidden = self.project_out.in_channels
        pad = -hidden % 16
        w_in, b_in = self.project_in.weight.flatten(1), self.project_in.bias
        w_dw, b_dw = self.dwconv.weight, self.dwconv.bias
        w_out = self.project_out.weight.flatten(1)
        if pad:
            w_in, w_dw = (_pad_halves(w, hidden, pad) for w in (w_in, w_dw))
            b_in, b_dw = (None if b is None else _pad_halves(b, hidden, pad) for b in (b_in, b_dw))
            w_out = F.pad(w_out, (0, pad))
        y = F.linear(x.permute(0, 2, 3, 1), w_in, b_in).permute(0, 3, 1, 2)
        y = F.conv2d(y, w_dw, b_dw, padding=1, groups=w_dw.shape[0])
        gated = _gate(*y.chunk(2, dim=1))
        out = F.linear(gated.permute(0, 2, 3, 1), w_out, self.project_out.bias)
        return out.permute(0, 3, 1, 2)


def _pad_halves(t: torch.Tensor, hidden: int, pad: int) -> torch.Tensor:
    """[a; b] (2*hidden rows) -> [a; 0; b; 0] with ``pad`` zero rows after each half."""
    zeros = t.new_zeros((pad, *t.shape[1:]))
    return torch.cat([t[:hidden], zeros, t[hidden:], zeros])


def _gate(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """gelu(x1) * x2; in place when no gradient is recorded (mul's backward needs gelu(x1))."""
    gated = F.gelu(x1)
    return gated * x2 if torch.is_grad_enabled() else gated.mul_(x2)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, heads*c, H, W) -> (B, heads, c, H*W)."""
    b, c, h, w = x.shape
    return x.reshape(b, heads, c // heads, h * w)


def merge_heads(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, heads, c, H*W) -> (B, heads*c, H, W)."""
    b, heads, c, _ = x.shape
    return x.reshape(b, heads * c, h, w)


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether the channels of a 4-D map are its innermost axis (NHWC in memory)."""
    return x.dim() == 4 and x.shape[1] > 1 and x.stride(1) == 1 and not x.is_contiguous()


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution; on the CPU computed as one matrix product over the pixels.

    Same arithmetic as ``conv(x)`` (a dot product over the input channels per pixel), but
    oneDNN and the fallback THNN kernel are several times slower than a plain GEMM for some
    channel counts of this network (e.g. 96 -> 510), so on the CPU we call the GEMM directly.
    Keeps the memory format of ``x`` (NCHW or channels_last). GPUs keep the convolution.
    """
    if x.device.type != "cpu" or conv.groups != 1 or conv.kernel_size != (1, 1):
        return conv(x)
    weight = conv.weight.flatten(1)
    if is_channels_last(x):  # (B, H, W, Cin) rows -> (B, H, W, Cout)
        return F.linear(x.permute(0, 2, 3, 1), weight, conv.bias).permute(0, 3, 1, 2)
    b, _, h, w = x.shape
    out = torch.matmul(weight, x.flatten(2))
    if conv.bias is not None:
        out = out + conv.bias[:, None]
    return out.view(b, -1, h, w)


def channel_mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply one (Cout, Cin) matrix per sample, ``matrix`` (B, Cout, Cin), to ``x`` (B, Cin, H, W)
    at every pixel; the result keeps the memory format of ``x``."""
    b, _, h, w = x.shape
    flat = x.flatten(2)  # a view in both memory formats
    if is_channels_last(x):  # (B, HW, Cin) @ (B, Cin, Cout): written NHWC, no transposes
        out = torch.matmul(flat.transpose(1, 2), matrix.transpose(1, 2))
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)
    return torch.matmul(matrix, flat).view(b, -1, h, w)


def channel_attention_logits(
    q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor
) -> torch.Tensor:
    """Transposed (channel x channel) attention logits of L2-normalised q and k, per head.

    ``q``, ``k``: (B, heads, c, N). The reference form of ``head_attention_logits``.
    """
    q = F.normalize(q, dim=-1)
    k = F.normalize(k, dim=-1)
    return (q @ k.transpose(-2, -1)) * temperature


def head_attention_logits(
    q: torch.Tensor, k: torch.Tensor, heads: int, temperature: torch.Tensor
) -> torch.Tensor:
    """``channel_attention_logits`` of (B, C, H, W) maps split into heads, as (B, heads, c, c).

    Computed as ``(q . k) / (max(|q|, eps) max(|k|, eps))``, the same value as normalising q and
    k first (``F.normalize``) but without writing the normalised copies: the dot products of
    all channel pairs come from one batched GEMM on views of q and k (NCHW or channels_last),
    the per-head diagonal blocks are kept, and the norms scale the small (c x c) blocks.

    The norms are square roots of sums of squares (``sum_of_squares``), not
    ``torch.linalg.vector_norm``: on the CPU that accumulates the H*W squares of a channels_last
    row one by one, and at 1280x720 its relative error (2e-4) moved the logits by 3e-4.
    """
    b, channels = q.shape[:2]
    c = channels // heads
    qf, kf = q.flatten(2), k.flatten(2)
    eps = 1e-12  # F.normalize's; clamping the squares keeps the gradient of a zero row finite
    nq = sum_of_squares(qf).clamp_min(eps * eps).sqrt()
    nk = sum_of_squares(kf).clamp_min(eps * eps).sqrt()
    half = low_precision(q)
    if half:
        # 16-bit: normalise first (|q.k| <= 1 then, where the raw dot products of a large
        # image overflow fp16), with fp32 norms; the GEMM accumulates in fp32, the logits are
        # returned in fp32 so the top-K choice is made on them, not on 8-bit mantissas.
        qf = (qf.float() / nq[..., None]).to(qf.dtype)
        kf = (kf.float() / nk[..., None]).to(kf.dtype)
    dots = _head_blocks(torch.matmul(qf, kf.transpose(1, 2)), b, heads, c)
    if half:
        return dots.float() * temperature
    nq, nk = nq.view(b, heads, c, 1), nk.view(b, heads, 1, c)
    return dots / (nq * nk).to(dots.dtype) * temperature


def _head_blocks(dots: torch.Tensor, b: int, heads: int, c: int) -> torch.Tensor:
    """The (B, heads, c, c) diagonal blocks of the (B, C, C) products of all channel pairs."""
    if heads == 1:
        return dots.view(b, 1, c, c)
    return dots.view(b, heads, c, heads, c).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)


def sum_of_squares(x: torch.Tensor) -> torch.Tensor:
    """Sum of squares over the last axis in at least fp32 (squared in fp32 too: a 16-bit square
    overflows above 256), accurate for any layout of ``x``.

    ``Tensor.sum`` adds in blocks (pairwise-like), so its error grows slowly with the length;
    ``vector_norm`` over a strided axis on the CPU does not (see ``head_attention_logits``).
    """
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x.square().sum(-1)


def project_heads(
    project_out: nn.Conv2d, attn: torch.Tensor, v: torch.Tensor, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """``project_out(merge_heads(attn @ v) * scale)`` with ``attn`` (B, heads, c, c) and ``v`` a
    (B, C, H, W) map, folded into one per-sample (C x C) matrix applied to ``v``.

    Both steps are linear in ``v``: ``W_out . blockdiag(attn)`` is a (C x C) product per sample
    (tiny), after which one GEMM over the pixels replaces two; equal up to float rounding.
    """
    b, heads, c, _ = attn.shape
    weight = project_out.weight.flatten(1).to(attn.dtype).view(-1, heads, c)
    matrix = torch.einsum("ohc,bhcd->bohd", weight, attn).reshape(b, -1, heads * c)
    if scale is not None:
        matrix = matrix * scale.to(matrix.dtype)
    out = channel_mix(matrix.to(v.dtype), v)
    if project_out.bias is not None:
        out = out + project_out.bias.to(out.dtype)[:, None, None]
    return out


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
        q, k, v = self.qkv_dwconv(pointwise(self.qkv, x)).chunk(3, 1)
        attn = head_attention_logits(q, k, self.heads, self.temperature).softmax(dim=-1)
        return project_heads(self.project_out, attn, v)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The release's computation, step by step (for tests and reading)."""
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
