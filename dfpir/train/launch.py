"""Starting a training run: the process group (one process or a ``torchrun`` group), the
trainer, and the teardown; a collective that fails because of another rank is named so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import ConfigError, ExperimentConfig
from .distributed import peer_failure, teardown
from .errors import PeerFailedError, TrainingInterrupted
from .run_setup import setup_for, stored_config
from .trainer import Trainer

__all__ = ["train"]


def train(cfg: ExperimentConfig | None, run_dir: str | Path, resume: bool = False,
          overwrite: bool = False, resume_with_changes: bool = False,
          started: Callable[[], None] | None = None) -> dict[str, dict[str, float]]:
    """Set up (one process or a ``torchrun`` group), train, tear down. ``cfg`` may be ``None``
    with ``resume``: the run's stored config is used. ``started`` is called once every check
    has passed and the run directory is written, before the training itself."""
    if cfg is None and resume:
        cfg = stored_config(run_dir)
    if cfg is None:
        raise ConfigError("a new run needs a config (--config)")
    ctx = setup_for(cfg)
    trainer = None
    try:
        trainer = Trainer(cfg, run_dir, resume, overwrite, ctx, resume_with_changes)
        if started is not None:
            started()
        results = trainer.run()
    except TrainingInterrupted:
        # a stop the ranks agreed on leaves no collective pending: close the group now, as a
        # finished run does (a group left to the interpreter's exit can abort it: SIGABRT)
        teardown(ctx)
        raise
    except RuntimeError as err:
        # no teardown after a failure: destroying a broken group can block; exiting closes it
        if peer_failure(err, ctx):
            asked = trainer is not None and trainer.stops.requested
            detail = str(err).splitlines()[0]
            detail = detail if len(detail) <= 160 else detail[:157].rsplit(" ", 1)[0] + " ..."
            raise PeerFailedError(
                f"rank {ctx.rank} stops: another process of the torchrun group ended (an "
                f"error it printed, or killed without a word) or did not answer within "
                f"train.dist_timeout_s ({detail})"
                + ("; the save the stop signal asked for could not be made (it needs every "
                   "rank)" if asked else "") + "; the last checkpoint, "
                f"{Path(run_dir) / 'checkpoints' / 'latest.pt'}, is whole: continue with --resume"
            ) from None
        raise
    teardown(ctx)
    return results
