"""Training: the loop, checkpoints, distributed set-up."""

from .checkpointing import atomic_save, export_weights, load_training_state
from .trainer import NonFiniteLossError, RunDirError, Trainer, train

__all__ = [
    "NonFiniteLossError",
    "RunDirError",
    "Trainer",
    "atomic_save",
    "export_weights",
    "load_training_state",
    "train",
]
