"""The training errors: each ends ``scripts/train.py`` with a one-line message and exit 2."""

from __future__ import annotations

import signal

from ..config import ConfigError
from ..errors import DfpirError, TrainingError
from ..models.checkpoint import CheckpointError


class NonFiniteLossError(TrainingError):
    """The loss (or the weights after a step) became NaN or infinite; the run stops and keeps
    its last good checkpoint."""


class RunDirError(DfpirError, RuntimeError):
    """The run directory already holds a run and neither resume nor overwrite was asked for."""


class RunLockedError(RunDirError):
    """Another live process holds the run directory's lock."""


class ResumeConfigError(ConfigError):
    """``--resume`` with a config that differs from the run's in keys a resume may not change."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, ...); the previous one is intact."""


class PeerFailedError(TrainingError):
    """Under torchrun, a collective failed because another process of the group ended (its own
    error is printed by that process) or stopped answering within the timeout."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM stopped the run after ``latest.pt`` was saved; ``exit_code`` is the
    shell's convention, 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int | None = None) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum if signum else 1

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a stop request"
