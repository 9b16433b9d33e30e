"""Stop requests: a first SIGINT/SIGTERM stops the run at the next step boundary after saving
``latest.pt`` (a single-process validation under way is skipped); a second stops at once.
Under torchrun every rank acts on the request all ranks agreed on at the last check, since a
signal may reach the ranks at different steps. A rank killed outright (kill -9, out of memory)
cannot take part: the others wait for it inside a training step's collective, so under
torchrun a rank whose step has not ended ``stall_s`` seconds after a stop signal gives up
(``on_stall``) instead of waiting until torchrun kills it."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import TrainingInterrupted

logger = logging.getLogger(__name__)


#: A SIGTERM this soon after the first signal (SIGTERM or SIGINT) is the same request, not "stop
#: at once": torchrun sends each worker its SIGTERM twice when it shuts the group down, and
#: after a Ctrl-C its workers got from the terminal. (A second Ctrl-C is always meant: SIGINT
#: has no such window.)
SAME_REQUEST_S = 2.0


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

    def __init__(self, distributed: bool, stall_s: float = 0.0,
                 on_stall: Callable[[int, float], None] | None = None,
                 announce: bool = True) -> None:
        self.distributed = distributed
        self.announce = announce  # rank 0 says it; another rank's signal it names after
        self.requested = False
        self.signal: int | None = None
        self.agreed = False
        self.agreed_signal: int | None = None  # the signal another rank got, under torchrun
        self.abortable = False  # a first signal now raises AbortValidation
        self.stall_s = stall_s  # under torchrun: how long a step may last after a signal
        self.on_stall = on_stall  # called (signal, seconds waited) from the watching thread
        self._step_start: float | None = None  # when the step under way started
        self._watch: threading.Thread | None = None
        self._signalled_at = 0.0
        self.from_other = False

    @property
    def stopping(self) -> bool:
        """The request every rank acts on: the local one, or under torchrun the agreed one."""
        return self.agreed if self.distributed else self.requested

    def agree(self, any_rank: bool, signal_number: int | None = None) -> None:
        """Under torchrun: the result of a check, whether any rank asked to stop (and the
        signal that asked, so that every rank exits with the status the signalled one does)."""
        self.agreed = any_rank
        # a signal heard during the check's all-reduce (after this rank's flag was read) stays
        # asked: the next check agrees on it (torchrun's repeat of it is the same request)
        self.requested = self.requested or any_rank
        self.agreed_signal = signal_number
        # asked by another rank before this one got a signal of its own (torchrun's SIGTERM
        # to the others, once the signalled rank has exited, may come while this one saves)
        self.from_other = self.from_other or (any_rank and self.signal is None)

    def on_signal(self, signum: int, _frame) -> None:
        now = time.monotonic()
        if self.signal is not None:
            if signum == signal.SIGTERM and now - self._signalled_at < SAME_REQUEST_S:
                # the same request: torchrun signals its workers twice, and passes a Ctrl-C
                # the workers got from the terminal on as SIGTERM
                return
            raise StopNow(signum)
        self.requested, self.signal, self._signalled_at = True, signum, now
        together = " (every rank must reach it)" if self.distributed else ""
        logger.log(logging.WARNING if self.announce else logging.INFO,
                   "%s: saving latest.pt at the next step boundary%s, then stopping (send it "
                   "again to stop at once)", signal.Signals(signum).name, together)
        if self.distributed and self.stall_s > 0 and self.on_stall is not None:
            self._watch = threading.Thread(target=self._watch_steps, args=(signum,),
                                           name="dfpir-stop-watch", daemon=True)
            self._watch.start()
        if self.abortable:
            raise AbortValidation()

    @contextmanager
    def step(self) -> Iterator[None]:
        """A training step (or a check of the steps): the work that a rank that is gone holds
        up in a collective, which the watching thread times after a stop signal."""
        self._step_start = time.monotonic()
        try:
            yield
        finally:
            self._step_start = None

    def _watch_steps(self, signum: int) -> None:
        """After a signal under torchrun: ``on_stall`` once a step has lasted ``stall_s``
        since the signal came (a step that began earlier counts from the signal)."""
        signalled = time.monotonic()
        while True:
            time.sleep(min(0.2, self.stall_s / 4))
            start = self._step_start
            if start is None:
                continue
            waited = time.monotonic() - max(start, signalled)
            if waited >= self.stall_s:
                self.on_stall(signum, waited)
                return

    @contextmanager
    def handling_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM go to ``on_signal`` (on the main thread only; restored after)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            leaving = self.distributed and (self.stopping or failed)
            for sig, handler in previous.items():
                # on its way out, saved or with an error to say (a peer gone): torchrun's
                # SIGTERM to the workers that remain (sent once one has exited) must not end
                # this one before it says why and frees the run directory
                signal.signal(sig, signal.SIG_IGN if leaving and sig == signal.SIGTERM
                              else handler)

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
        other = self.agreed_signal and (self.from_other or not self.signal)
        number = self.agreed_signal if other else self.signal or self.agreed_signal
        by = signal.Signals(number).name if number else "a stop request"
        where = " (on another rank)" if other else ""
        return TrainingInterrupted(
            f"stopped by {by}{where}: {latest} holds global step {global_step}; continue with "
            f"--resume --run-dir {run_dir}", number)


def give_up_waiting(signum: int, waited: float, rank: int, latest: Path,
                    latest_step: int | None, run_dir: Path, close: Callable[[], None]) -> None:
    """``StopRequests.on_stall`` of a trainer: say that a rank is gone and what the run keeps,
    free the run directory (``close``) and exit with the signal's status, without saving (the
    step under way cannot end)."""
    held = f"global step {latest_step}" if latest_step is not None else "the last step saved"
    logger.error("error: rank %d: %s came %.0f s ago and this rank's training step has not "
                 "ended: it waits in a collective for a rank that is gone (killed, or out of "
                 "memory). Stopping without saving: %s holds %s; continue with --resume "
                 "--run-dir %s", rank, signal.Signals(signum).name, waited, latest, held,
                 run_dir)
    try:
        close()
    finally:
        os._exit(128 + signum)
