"""Stop requests: a first SIGINT/SIGTERM stops the run at the next step boundary after saving
``latest.pt`` (a single-process validation under way is skipped); a second stops at once.
Under torchrun every rank acts on the request all ranks agreed on at the last check, since a
signal may reach the ranks at different steps."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import TrainingInterrupted

logger = logging.getLogger(__name__)


class StopNow(KeyboardInterrupt):  # noqa: N818 (like KeyboardInterrupt)
    """A second SIGINT/SIGTERM: stop at once. A ``KeyboardInterrupt`` so that no ``except
    Exception`` holds it up; the atomic writes keep every checkpoint whole."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"second {signal.Signals(signum).name}: stopped at once")
        self.signum = signum
        self.exit_code = 128 + signum


class AbortValidation(KeyboardInterrupt):  # noqa: N818 (internal control flow)
    """A first SIGINT/SIGTERM during a validation: skip it, save, stop."""


class StopRequests:
    """This process's stop request (``requested``, set by a signal or by code), the signal that
    made it, and under torchrun the request the ranks agreed on (``agree``)."""

    def __init__(self, distributed: bool) -> None:
        self.distributed = distributed
        self.requested = False
        self.signal: int | None = None
        self.agreed = False
        self.agreed_signal: int | None = None  # the signal another rank got, under torchrun
        self.abortable = False  # a first signal now raises AbortValidation

    @property
    def stopping(self) -> bool:
        """The request every rank acts on: the local one, or under torchrun the agreed one."""
        return self.agreed if self.distributed else self.requested

    def agree(self, any_rank: bool, signal_number: int | None = None) -> None:
        """Under torchrun: the result of a check, whether any rank asked to stop (and the
        signal that asked, so that every rank exits with the status the signalled one does)."""
        self.agreed = self.requested = any_rank
        self.agreed_signal = signal_number

    def on_signal(self, signum: int, _frame) -> None:
        if self.signal is not None:
            raise StopNow(signum)
        self.requested, self.signal = True, signum
        logger.warning("%s: saving latest.pt at the next step boundary, then stopping (send "
                       "it again to stop at once)", signal.Signals(signum).name)
        if self.abortable:
            raise AbortValidation()

    @contextmanager
    def handling_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM go to ``on_signal`` (on the main thread only; restored after)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextmanager
    def abortable_work(self, shared: bool = True) -> Iterator[None]:
        """Work a first signal may cut short (a validation): it raises ``AbortValidation``
        inside. Under torchrun work ``shared`` by the ranks runs to its end."""
        self.abortable = not (shared and self.distributed)
        try:
            yield
        finally:
            self.abortable = False

    def interrupted(self, latest: Path, global_step: int, run_dir: Path) -> TrainingInterrupted:
        """The error that ends a stopped run (exit status 128 + the signal)."""
        number = self.signal or self.agreed_signal
        by = signal.Signals(number).name if number else "a stop request"
        where = "" if self.signal or not self.agreed_signal else " (on another rank)"
        return TrainingInterrupted(
            f"stopped by {by}{where}: {latest} holds global step {global_step}; continue with "
            f"--resume --run-dir {run_dir}", number)
