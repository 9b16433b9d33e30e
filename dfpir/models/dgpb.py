"""The Degradation-Guided Perturbation Block (DGPB) and its parts: DGM, DGCPM and CAAPM.

F_b = CAAPM(DGCPM(F, DGM(p)), F) followed by a GDFN, as in the paper's Eq. (1) and the release.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import full_fp32
from .restormer import (
    GDFN,
    LayerNorm,
    channel_attention_logits,
    channel_mix,
    head_attention_logits,
    merge_heads,
    pointwise,
    project_heads,
    split_heads,
)


class DGM(nn.Module):
    """Degradation-Guided Module: maps a prompt embedding to one score per channel of the 2C space.

    Two linear layers with no activation between them, as the release. The scores are always
    computed in fp32 (autocast and TF32 off, see ``precision``): their order is the DGCPM's
    channel permutation, a discrete choice that rounding must not change. Runs outside
    ``torch.compile`` graphs for the same reason (a compiled matmul may pick TF32).
    """

    def __init__(self, prompt_dim: int, out_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(prompt_dim, prompt_dim)
        self.fc2 = nn.Linear(prompt_dim, out_channels)

    @torch.compiler.disable
    def forward(self, prompt: torch.Tensor) -> torch.Tensor:
        with full_fp32(prompt.device.type):
            hidden = F.linear(prompt.float(), self.fc1.weight.float(), self.fc1.bias.float())
            return F.linear(hidden, self.fc2.weight.float(), self.fc2.bias.float())


class DGCPM(nn.Module):
    """Degradation-Guided Channel Perturbation Module.

    Doubles the channels with a 1x1 conv, reorders them by the descending order of the DGM scores
    (one permutation per sample: a top-2C selection), and halves them back with a 1x1 conv.

    In the release the reordering is a pure index selection, so no gradient reaches the DGM and it
    keeps its initial weights. ``learnable_dgm=True`` (ours, off by default) multiplies the
    reordered channels by ``(s - stop_gradient(s)) + 1`` with ``s`` the sorted scores: the weights
    are exactly 1, so the forward pass is the release's, and the DGM receives the gradient it
    would get if the channels were scaled by their scores, so the order can change in training.
    """

    def __init__(self, dim: int, learnable_dgm: bool = False) -> None:
        super().__init__()
        self.expand = nn.Conv2d(dim, 2 * dim, kernel_size=1)
        self.reduce = nn.Conv2d(2 * dim, dim, kernel_size=1)
        self.learnable_dgm = learnable_dgm

    def channel_order(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted scores and the channel order (B, 2C) they induce, highest score first."""
        return scores.topk(scores.shape[-1], dim=-1)

    def channel_weights(self, values: torch.Tensor) -> torch.Tensor | None:
        """Per-channel weights of the reordered channels: None (the release) or the
        straight-through weights ``(s - stop_gradient(s)) + 1`` of ``learnable_dgm``, exactly 1 in
        any precision (``s - s`` is an exact 0; ``1 + s - s`` would round)."""
        return (values - values.detach()) + 1 if self.learnable_dgm else None

    def forward(self, x: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """expand -> reorder -> reduce, computed as one (C x C) 1x1 conv per sample.

        All three steps are linear, so ``reduce . reorder . expand`` collapses into a single
        matrix per sample; this skips the 2C-channel intermediate (a quarter of the FLOPs and
        none of its memory) and equals ``forward_reference`` up to float rounding.
        """
        values, order = self.channel_order(scores)
        b, c = x.shape[:2]
        w_reduce = self.reduce.weight.flatten(1).to(x.dtype).expand(b, -1, -1)
        weights = self.channel_weights(values)
        if weights is not None:
            w_reduce = w_reduce * weights.to(x.dtype)[:, None, :]
        # column order[i] of the reordered reduce matrix is column i of reduce
        index = order[:, None, :].expand(-1, c, -1)
        w_perm = torch.empty_like(w_reduce).scatter_(2, index, w_reduce)
        weight = w_perm @ self.expand.weight.flatten(1).to(x.dtype)  # (B, C, C)
        bias = (w_perm @ self.expand.bias.to(x.dtype)[:, None]).squeeze(-1) + self.reduce.bias
        return channel_mix(weight, x) + bias.to(x.dtype)[:, :, None, None]

    def forward_reference(self, x: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """The release's computation, step by step (for tests and reading)."""
        values, order = self.channel_order(scores)
        y = self.expand(x)
        y = torch.gather(y, 1, order[:, :, None, None].expand(-1, -1, *y.shape[-2:]))
        weights = self.channel_weights(values)
        if weights is not None:
            y = y * weights[:, :, None, None].to(y.dtype)
        return self.reduce(y)


def keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest entries of every row, set the others to -inf (a softmax then drops them)."""
    if k >= logits.shape[-1]:
        return logits
    index = logits.topk(k, dim=-1).indices
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, index, True)
    return logits.masked_fill(~keep, float("-inf"))


class CAAPM(nn.Module):
    """Channel-Adapted Attention Perturbation Module.

    Channel cross-attention whose queries come from the perturbed feature Q and whose keys and
    values come from the original feature F. With ``masked=True`` only the ``int(gamma * C/h)``
    largest logits of each row survive (top-K masking, paper Eq. (3)); ``masked=False`` is the
    plain channel cross-attention ("CA" in the paper's Table 3). The attention output is scaled by
    a learnable scalar initialised to 0.2 before the output projection, as the release.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        gamma: float = 0.9,
        masked: bool = True,
        norm: str = "WithBias",
    ) -> None:
        super().__init__()
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        self.heads = heads
        self.masked = masked
        self.gamma = gamma
        self.norm_q = LayerNorm(dim, norm)
        self.norm_kv = LayerNorm(dim, norm)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.scale = nn.Parameter(torch.tensor([0.2]))
        self.q = nn.Conv2d(dim, dim, kernel_size=1, bias=False)
        self.q_dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim, bias=False)
        self.kv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=False)
        self.kv_dwconv = nn.Conv2d(
            dim * 2, dim * 2, kernel_size=3, padding=1, groups=dim * 2, bias=False
        )
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=False)

    @property
    def top_k(self) -> int:
        """Entries kept per row of each head's (C/h x C/h) attention map."""
        per_head = self.project_out.in_channels // self.heads
        return int(self.gamma * per_head) if self.masked else per_head

    def forward(self, query: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        q = self.q_dwconv(pointwise(self.q, self.norm_q(query)))
        k, v = self.kv_dwconv(pointwise(self.kv, self.norm_kv(feature))).chunk(2, dim=1)
        logits = head_attention_logits(q, k, self.heads, self.temperature)
        attn = keep_top_k(logits, self.top_k).softmax(dim=-1)
        return project_heads(self.project_out, attn, v, self.scale)

    def forward_reference(self, query: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """The release's computation, step by step (for tests and reading)."""
        _, _, h, w = feature.shape
        q = split_heads(self.q_dwconv(self.q(self.norm_q(query))), self.heads)
        k, v = (
            split_heads(t, self.heads)
            for t in self.kv_dwconv(self.kv(self.norm_kv(feature))).chunk(2, dim=1)
        )
        logits = keep_top_k(channel_attention_logits(q, k, self.temperature), self.top_k)
        out = (logits.softmax(dim=-1) @ v) * self.scale
        return self.project_out(merge_heads(out, h, w))


class DGPB(nn.Module):
    """Degradation-Guided Perturbation Block: F_b = F_a + GDFN(LN(F_a)), F_a = CAAPM(DGCPM(F), F).

    The switches give every row of the paper's Table 3:
    ``dgcpm`` turns the channel perturbation on (off: the query is F itself);
    ``attention`` is ``"caapm"`` (top-K masked cross-attention), ``"ca"`` (plain channel
    cross-attention) or ``None`` (no attention: F_a is the query itself).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        prompt_dim: int = 512,
        dgcpm: bool = True,
        attention: str | None = "caapm",
        gamma: float = 0.9,
        learnable_dgm: bool = False,
        ffn_expansion: float = 2.66,
        bias: bool = False,
        norm: str = "WithBias",
    ) -> None:
        super().__init__()
        if attention not in ("caapm", "ca", None):
            raise ValueError(f"attention must be 'caapm', 'ca' or None, got {attention!r}")
        if not dgcpm and attention is None:
            raise ValueError("a DGPB needs the DGCPM, an attention, or both")
        self.dgm = DGM(prompt_dim, 2 * dim) if dgcpm else None
        if self.dgm is not None and not learnable_dgm:
            # No gradient can reach it (see DGCPM); saying so up front keeps DDP from waiting
            # for gradients that never come.
            self.dgm.requires_grad_(False)
        self.dgcpm = DGCPM(dim, learnable_dgm) if dgcpm else None
        self.caapm = (
            CAAPM(dim, heads, gamma, masked=attention == "caapm", norm=norm) if attention else None
        )
        self.norm_ffn = LayerNorm(dim, norm)
        self.ffn = GDFN(dim, ffn_expansion, bias)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        query = self.dgcpm(x, self.dgm(prompt)) if self.dgcpm is not None else x
        out = self.caapm(query, x) if self.caapm is not None else query
        return out + self.ffn(self.norm_ffn(out))
