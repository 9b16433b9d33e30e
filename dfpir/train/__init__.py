"""Training: the loop, checkpoints, distributed set-up, the run directory."""

from .checkpoint_io import EXPORT_FILES, atomic_save, export_weights, load_training_state
from .errors import (
    CheckpointWriteError,
    NonFiniteLossError,
    PeerFailedError,
    ResumeConfigError,
    RunDirError,
    RunLockedError,
    TrainingInterrupted,
)
from .launch import train
from .run_setup import stored_config
from .stop_requests import StopNow
from .trainer import Trainer

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
