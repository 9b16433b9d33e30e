"""Training losses: the paper's L1, the squared error, the demo's PSNR loss, and an opt-in
per-sample normalisation (measured on the demo: it did not help, see docs/demo_experiments.md)."""

from __future__ import annotations

from typing import get_args

import torch
import torch.nn.functional as F

from ..config import Loss, LossWeighting, TrainConfig

LOSSES: tuple[str, ...] = get_args(Loss)  # the config's choices (``train.loss``)
LOSS_WEIGHTINGS: tuple[str, ...] = get_args(LossWeighting)  # ``train.loss_weighting``
PSNR_LOSS_FLOOR: float = TrainConfig.psnr_loss_floor  # the config's default (40 dB)


def per_sample_loss(kind: str, restored: torch.Tensor, clean: torch.Tensor,
                    floor: float = PSNR_LOSS_FLOOR) -> torch.Tensor:
    """The loss of each item of a batch (shape ``[N]``).

    'l1' (the paper), 'charbonnier', 'mse' or 'psnr'. Why 'mse': the demo's rain adds sparse
    streaks, and under L1 the identity is a stationary point for sparse errors (the median of
    each pixel's error is zero), so rain was never learned; the squared error is PSNR's own
    loss. 'psnr' is minus each item's PSNR, ``10 log10(mse + floor)`` (HINet's PSNR loss with a
    floor): its gradient is the squared error's divided by the item's own error, so a crop of
    a mild degradation (blur, 33 dB) weighs as much per dB as one of a strong one (low light,
    12 dB), where the plain mean spends the model on the strong ones; ``floor`` stops almost
    perfect crops (flat or black regions) from taking over.
    """
    if kind == "psnr":
        return 10.0 * torch.log10(per_sample_loss("mse", restored, clean) + floor)
    if kind == "l1":
        error = (restored - clean).abs()
    elif kind == "charbonnier":
        error = torch.sqrt((restored - clean) ** 2 + 1e-6)
    elif kind == "mse":
        error = (restored - clean) ** 2
    else:
        raise ValueError(f"train.loss must be one of {LOSSES}, got {kind!r}")
    return error.flatten(1).mean(1)


def compute_loss(kind: str, restored: torch.Tensor, clean: torch.Tensor,
                 floor: float = PSNR_LOSS_FLOOR) -> torch.Tensor:
    """The batch loss: the mean over every pixel (the paper's), or over the items for 'psnr'."""
    if kind == "l1":
        return F.l1_loss(restored, clean)
    return per_sample_loss(kind, restored, clean, floor).mean()


def input_normalised_loss(kind: str, restored: torch.Tensor, clean: torch.Tensor,
                          degraded: torch.Tensor, floor: float | None = None) -> torch.Tensor:
    """Each item's loss divided by the loss of its own input (no gradient), then averaged.

    Why: in an all-in-one batch the global degradations (low light, haze) have input errors
    several times those of the local ones (rain, blur), so a plain mean spends the model's
    capacity on them first. Dividing by the input's error asks every task for the same
    *relative* improvement. ``floor`` (mean absolute error 0.01 of the [0, 1] range) keeps
    almost clean crops from dominating: in the demo about 10% of the blur crops and 4% of the
    rain crops (flat or black regions) have an input error under 0.003.
    Not in the paper; opt in with ``train.loss_weighting: input``. On the demo it slowed every
    task (docs/demo_experiments.md), so nothing uses it by default.
    """
    if kind == "psnr":
        raise ValueError("the input-normalised loss needs loss 'l1', 'charbonnier' or 'mse', "
                         "not 'psnr' (a PSNR is already relative to its item's own error)")
    if floor is None:  # an error of 0.01 of the [0, 1] range, in the loss's own units
        floor = 1e-4 if kind == "mse" else 0.01
    ours = per_sample_loss(kind, restored, clean)
    with torch.no_grad():
        theirs = per_sample_loss(kind, degraded.float(), clean).clamp_min(floor)
    return (ours / theirs).mean()


def training_loss(kind: str, weighting: str, restored: torch.Tensor, clean: torch.Tensor,
                  degraded: torch.Tensor, psnr_floor: float = PSNR_LOSS_FLOOR) -> torch.Tensor:
    """The loss the trainer minimises: ``weighting`` 'none' (the paper) or 'input'."""
    if weighting == "none":
        return compute_loss(kind, restored, clean, psnr_floor)
    if weighting == "input":
        return input_normalised_loss(kind, restored, clean, degraded)
    raise ValueError(f"train.loss_weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
