"""Training: the loop, checkpoints, distributed set-up, the run directory."""

from .checkpointing import EXPORT_FILES, atomic_save, export_weights, load_training_state
from .errors import (
    CheckpointWriteError,
    NonFiniteLossError,
    PeerFailedError,
    ResumeConfigError,
    RunDirError,
    RunLockedError,
    TrainingInterrupted,
)
from .trainer import StopNow, Trainer, stored_config, train

__all__ = [
    "CheckpointWriteError",
    "NonFiniteLossError",
    "PeerFailedError",
    "ResumeConfigError",
    "RunDirError",
    "RunLockedError",
    "StopNow",
    "Trainer",
    "TrainingInterrupted",
    "atomic_save",
    "EXPORT_FILES",
    "export_weights",
    "load_training_state",
    "stored_config",
    "train",
]
