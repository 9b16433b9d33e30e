"""One training step: forward (bf16 autocast when asked), loss, backward, gradient norm
(clipped when asked), optimiser step. The step is one unit with no host synchronisation in
it: its loss and gradient norm stay on the device until the ``LossWindow`` reads them."""

from __future__ import annotations

import torch

from ..config import TrainConfig
from ..models.compiling import eager
from .losses import compute_loss, per_sample_loss, training_loss


class TrainStep:
    """The step of a run. ``model`` is the network whose parameters are stepped, ``net`` what
    the batch goes through (``model`` itself, or its DDP or compiled wrapper); ``prompt_rows``
    holds each task's prompt embedding on the device. ``use`` gives it each stage's
    optimiser."""

    def __init__(self, model: torch.nn.Module, net: torch.nn.Module, train: TrainConfig,
                 prompt_rows: dict[str, torch.Tensor], device: torch.device) -> None:
        self.model, self.net, self.train = model, net, train
        self.prompt_rows, self.device = prompt_rows, device
        self.optimizer: torch.optim.Optimizer | None = None
        self.last_batch: tuple[torch.Tensor, torch.Tensor, list[str]] | None = None

    def use(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimiser of the stage that starts."""
        self.optimizer = optimizer

    def prompts(self, tasks: list[str]) -> torch.Tensor:
        """The batch's prompt embeddings, stacked on the device (no host copy)."""
        return torch.stack([self.prompt_rows[task] for task in tasks])

    def __call__(self, degraded: torch.Tensor, clean: torch.Tensor, tasks: list[str]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step; returns (loss, gradient norm, each item's loss), on the device,
        not synchronised (the items' losses, detached, are for the per-task logs)."""
        t = self.train
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format
        degraded = degraded.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        clean = clean.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=t.bf16):
            restored = self.net(degraded, self.prompts(tasks))
        loss = training_loss(t.loss, t.loss_weighting, restored.float(), clean, degraded,
                             t.psnr_loss_floor)
        with torch.no_grad():
            items = per_sample_loss(t.loss, restored.detach().float(), clean, t.psnr_loss_floor)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm(
                [q.grad for q in self.model.parameters() if q.grad is not None])
        self.optimizer.step()
        self.last_batch = (degraded, clean, tasks)
        return loss.detach(), norm.detach(), items

    @torch.no_grad()
    def loss_on_last_batch(self) -> float | None:
        """The loss of the last batch under the current weights: a step can leave finite
        weights that no longer give finite outputs (a runaway lr), and those must not become a
        checkpoint. One forward; ``None`` before the first step."""
        if self.last_batch is None:
            return None
        degraded, clean, tasks = self.last_batch
        t = self.train
        was_training = self.model.training
        self.model.eval()
        try:
            with eager(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=t.bf16):
                restored = self.model(degraded, self.prompts(tasks))
            return float(compute_loss(t.loss, restored.float(), clean, t.psnr_loss_floor))
        finally:
            self.model.train(was_training)
