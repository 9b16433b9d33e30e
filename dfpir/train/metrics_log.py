"""The run's TensorBoard events (``<run>/tensorboard``, rank 0): scalars, sample images and the
config as text. Until ``open`` (and on the other ranks) it writes nothing."""

from __future__ import annotations

from pathlib import Path

import torch


class MetricsLog:
    """A TensorBoard writer that is a no-op until opened."""

    def __init__(self) -> None:
        self.writer = None

    def open(self, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder))

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, image: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
