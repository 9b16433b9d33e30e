"""DFPIR: a Restormer with four Degradation-Guided Perturbation Blocks on its skips and latent."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .dgpb import DGPB
from .restormer import Downsample, OverlapPatchEmbed, Upsample, pointwise, transformer_stage

#: The paper's Table 3 (a) rows, as (ca, dgcpm, caapm) switches.
TABLE3_ROWS: dict[str, tuple[bool, bool, bool]] = {
    "baseline": (False, False, False),
    "a": (True, False, False),
    "b": (True, False, True),
    "c": (False, True, False),
    "DFPIR": (False, True, True),
}


@dataclass
class DFPIRConfig:
    """Architecture of DFPIR; the defaults are the paper's and the release's.

    Table 3 switches: ``dgcpm`` (degradation-guided channel shuffle), ``caapm`` (top-K masked
    channel cross-attention, ratio ``gamma``) and ``ca`` (plain, unmasked channel
    cross-attention). ``caapm`` implies the cross-attention, so ``ca`` only matters when
    ``caapm`` is off. All three off is the bare Restormer baseline: no DGPB, no prompt.
    ``learnable_dgm`` is ours (off by default): it lets gradient reach the DGM, see ``DGCPM``.
    """

    in_channels: int = 3  # image channels in
    out_channels: int = 3  # image channels out
    dim: int = 48  # channels of level 1 (C; the paper: 48)
    # transformer blocks per level (the paper: 4, 6, 6, 8)
    num_blocks: list[int] = field(default_factory=lambda: [4, 6, 6, 8])
    num_refinement_blocks: int = 4  # refinement blocks after the decoder
    heads: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # attention heads per level
    ffn_expansion: float = 2.66  # GDFN hidden width / channels
    bias: bool = False  # biases in the backbone's convolutions (the release: none)
    norm: str = "WithBias"  # LayerNorm form: WithBias (the release) or BiasFree
    prompt_dim: int = 512  # prompt embedding size (CLIP ViT-B/32: 512)
    ca: bool = False  # Table 3: plain channel cross-attention (when caapm is off)
    dgcpm: bool = True  # Table 3: the degradation-guided channel perturbation
    caapm: bool = True  # Table 3: the top-K masked cross-attention
    gamma: float = 0.9  # CAAPM: the share of each attention row kept (Table 3b)
    learnable_dgm: bool = False  # ours: let gradient reach the DGM (the release: frozen)
    pad_multiple: int = 8  # inputs are padded to a multiple of this and cropped back

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "dim", "prompt_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not (self.ffn_expansion > 0 and math.isfinite(self.ffn_expansion)
                and int(self.dim * self.ffn_expansion) >= 1):
            raise ValueError(f"ffn_expansion must be a number > 0 that leaves the GDFN at least "
                             f"one hidden channel (dim {self.dim}), got {self.ffn_expansion}")
        if self.num_refinement_blocks < 0:
            raise ValueError("num_refinement_blocks must be >= 0, got "
                             f"{self.num_refinement_blocks}")
        for name in ("num_blocks", "heads"):
            if len(getattr(self, name)) != 4:
                raise ValueError(f"{name} needs 4 entries (one per level), got "
                                 f"{getattr(self, name)}")
        if any(n < 0 for n in self.num_blocks):
            raise ValueError(f"num_blocks must be >= 0 at every level, got {self.num_blocks}")
        if any(h < 1 for h in self.heads):
            raise ValueError(f"heads must be positive at every level, got {self.heads}")
        for level, heads in enumerate(self.heads):
            if (self.dim * 2**level) % heads:
                raise ValueError(
                    f"heads: level {level + 1} has {self.dim * 2**level} channels, not "
                    f"divisible by {heads} heads"
                )
        if self.dim % 2:
            raise ValueError(f"dim must be even (Downsample halves it), got {self.dim}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.norm not in ("WithBias", "BiasFree"):
            raise ValueError(f"norm must be 'WithBias' or 'BiasFree', got {self.norm!r}")
        if self.pad_multiple < 8 or self.pad_multiple % 8:
            raise ValueError(f"pad_multiple must be a multiple of 8, got {self.pad_multiple}")

    @classmethod
    def table3_row(cls, row: str, **overrides) -> DFPIRConfig:
        """The configuration of a row of the paper's Table 3 (a): baseline, a, b, c or DFPIR."""
        if row not in TABLE3_ROWS:
            raise ValueError(f"unknown Table 3 row {row!r}; expected one of {list(TABLE3_ROWS)}")
        ca, dgcpm, caapm = TABLE3_ROWS[row]
        return cls(ca=ca, dgcpm=dgcpm, caapm=caapm, **overrides)

    @classmethod
    def restormer(cls, **overrides) -> DFPIRConfig:
        """The bare Restormer baseline (no DGPB)."""
        return cls.table3_row("baseline", **overrides)

    @property
    def has_dgpb(self) -> bool:
        return self.ca or self.dgcpm or self.caapm

    @property
    def attention(self) -> str | None:
        """The DGPB attention: 'caapm' (masked), 'ca' (plain) or None."""
        return "caapm" if self.caapm else ("ca" if self.ca else None)


class DFPIR(nn.Module):
    """All-in-one restoration network.

    ``forward(image, prompt)`` takes images in [0, 1] of any size (padded internally to a
    multiple of ``pad_multiple`` by reflection and cropped back) and one prompt embedding per
    sample, shape (B, prompt_dim), or a single (prompt_dim,) embedding for the whole batch.
    Parameter names follow the releases (backbone) and the paper (DGPB parts); see
    ``dfpir.models.checkpoint`` for loading the released checkpoints.
    """

    def __init__(self, config: DFPIRConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DFPIRConfig()
        dims = [cfg.dim * 2**level for level in range(4)]

        def stage(level: int, depth: int, channels: int | None = None) -> nn.Sequential:
            return transformer_stage(
                channels or dims[level], cfg.heads[level], depth, cfg.ffn_expansion, cfg.bias,
                cfg.norm,
            )

        self.patch_embed = OverlapPatchEmbed(cfg.in_channels, cfg.dim, cfg.bias)
        self.encoder_level1 = stage(0, cfg.num_blocks[0])
        self.down1_2 = Downsample(dims[0])
        self.encoder_level2 = stage(1, cfg.num_blocks[1])
        self.down2_3 = Downsample(dims[1])
        self.encoder_level3 = stage(2, cfg.num_blocks[2])
        self.down3_4 = Downsample(dims[2])
        self.latent = stage(3, cfg.num_blocks[3])

        self.up4_3 = Upsample(dims[3])
        self.reduce_chan_level3 = nn.Conv2d(dims[3], dims[2], kernel_size=1, bias=cfg.bias)
        self.decoder_level3 = stage(2, cfg.num_blocks[2])
        self.up3_2 = Upsample(dims[2])
        self.reduce_chan_level2 = nn.Conv2d(dims[2], dims[1], kernel_size=1, bias=cfg.bias)
        self.decoder_level2 = stage(1, cfg.num_blocks[1])
        self.up2_1 = Upsample(dims[1])
        self.decoder_level1 = stage(0, cfg.num_blocks[0], channels=dims[1])
        self.refinement = stage(0, cfg.num_refinement_blocks, channels=dims[1])
        self.output = nn.Conv2d(dims[1], cfg.out_channels, kernel_size=3, padding=1, bias=cfg.bias)

        self.dgpb_level1 = self._dgpb(dims[0], cfg.heads[0])
        self.dgpb_level2 = self._dgpb(dims[1], cfg.heads[1])
        self.dgpb_level3 = self._dgpb(dims[2], cfg.heads[2])
        self.dgpb_latent = self._dgpb(dims[3], cfg.heads[3])

    def _dgpb(self, dim: int, heads: int) -> DGPB | None:
        cfg = self.config
        if not cfg.has_dgpb:
            return None
        return DGPB(
            dim, heads, cfg.prompt_dim, dgcpm=cfg.dgcpm, attention=cfg.attention,
            gamma=cfg.gamma, learnable_dgm=cfg.learnable_dgm, ffn_expansion=cfg.ffn_expansion,
            bias=cfg.bias, norm=cfg.norm,
        )

    def _perturb(self, block: DGPB | None, x: torch.Tensor, prompt: torch.Tensor | None):
        return x if block is None else block(x, prompt)

    def _check_prompt(self, prompt: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if not self.config.has_dgpb:
            return None
        if prompt is None:
            raise ValueError("this DFPIR has DGPBs and needs a prompt embedding per image")
        if prompt.dim() == 1:
            prompt = prompt.unsqueeze(0)
        if prompt.dim() != 2 or prompt.shape[-1] != self.config.prompt_dim:
            raise ValueError(
                f"prompt must have shape (B, {self.config.prompt_dim}) or "
                f"({self.config.prompt_dim},), got {tuple(prompt.shape)}"
            )
        if prompt.shape[0] == 1 and batch > 1:
            prompt = prompt.expand(batch, -1)
        elif prompt.shape[0] != batch:
            raise ValueError(f"got {prompt.shape[0]} prompts for a batch of {batch} images")
        return prompt.to(self.output.weight.dtype)

    def forward(self, image: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.config.in_channels}, H, W), got "
                f"{tuple(image.shape)}"
            )
        prompt = self._check_prompt(prompt, image.shape[0])
        h, w = image.shape[-2:]
        x = pad_to_multiple(image, self.config.pad_multiple)
        if x.device.type == "cpu":
            # channels_last throughout: oneDNN's depthwise convolutions and the per-pixel GEMMs
            # of the 1x1 convolutions and LayerNorms run several times faster on NHWC maps
            x = x.contiguous(memory_format=torch.channels_last)

        enc1 = self.encoder_level1(self.patch_embed(x))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self._perturb(self.dgpb_latent, self.latent(self.down3_4(enc3)), prompt)

        dec3 = torch.cat([self.up4_3(latent), self._perturb(self.dgpb_level3, enc3, prompt)], 1)
        dec3 = self.decoder_level3(pointwise(self.reduce_chan_level3, dec3))
        dec2 = torch.cat([self.up3_2(dec3), self._perturb(self.dgpb_level2, enc2, prompt)], 1)
        dec2 = self.decoder_level2(pointwise(self.reduce_chan_level2, dec2))
        dec1 = torch.cat([self.up2_1(dec2), self._perturb(self.dgpb_level1, enc1, prompt)], 1)
        dec1 = self.refinement(self.decoder_level1(dec1))
        out = self.output(dec1) + x
        return out[..., :h, :w].contiguous(memory_format=image_format(image))

    def dgpbs(self) -> dict[str, DGPB]:
        """The perturbation blocks by name, shallowest first (empty for the baseline)."""
        names = ("dgpb_level1", "dgpb_level2", "dgpb_level3", "dgpb_latent")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def image_format(x: torch.Tensor) -> torch.memory_format:
    """The memory format to give an output for input ``x``: the input's own."""
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W at the bottom/right to a multiple, by reflection where the image allows it."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def build_model(config: DFPIRConfig | dict | None = None) -> DFPIR:
    """A DFPIR from a config object or a plain dict of ``DFPIRConfig`` fields."""
    if isinstance(config, dict):
        unknown = set(config) - set(DFPIRConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown model option(s) {sorted(unknown)}; expected some of "
                f"{sorted(DFPIRConfig.__dataclass_fields__)}"
            )
        config = DFPIRConfig(**config)
    return DFPIR(config)
