"""A stage's progress on stderr: a tqdm bar on a terminal, plain lines in a log file.

A bar redrawn at every step writes a carriage-return line per step into a cluster log
(hundreds of MB over a five-task run); off a terminal the progress is one plain line at most
every ``every_s`` seconds instead. Each line (and, on a terminal, one every ``every_s``
seconds) also goes to ``log`` (the run's ``train.log``). Lines carry the ETA of the stage and,
with ``later``, of the run."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm


def duration(seconds: float) -> str:
    """``3d04h``, ``5h07m``, ``12m30s`` or ``45s``."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class StageProgress:
    """``update`` after each step, ``set_postfix`` when new values (loss, lr) are known.
    ``later(seconds_per_iteration)``: the seconds the run's later stages will take at this
    stage's speed (scaled by their work), for the run's ETA."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool = True,
                 every_s: float = 30.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] | None = None,
                 later: Callable[[float], float] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done, self.initial, self.desc = total, initial, initial, desc
        self.enabled, self.every_s, self.clock = enabled, every_s, clock
        self.log, self.later = log, later
        self.start = self.last = clock()
        self.postfix: dict[str, object] = {}
        self._said: tuple[int, dict[str, object]] | None = None  # the last line's count, values
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="it", file=self.stream,
                        dynamic_ncols=True, mininterval=0.1) if enabled and isatty else None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.enabled and self.clock() - self.last >= self.every_s:
            self._line()

    def set_postfix(self, **values: object) -> None:
        """Shown at the bar's next redraw (never one of its own) or in the next plain line."""
        self.postfix = values
        if self.bar is not None:
            eta = self.run_eta()
            shown = {**values, **({"run ETA": eta} if eta else {})}
            self.bar.set_postfix(shown, refresh=False)

    def seconds_per_iteration(self) -> float | None:
        elapsed, steps = self.clock() - self.start, self.done - self.initial
        return elapsed / steps if steps > 0 and elapsed > 0 else None

    def run_eta(self) -> str:
        """The run's ETA (this stage and the later ones), or "" before the first step."""
        per_it = self.seconds_per_iteration()
        if per_it is None or self.later is None:
            return ""
        return duration((self.total - self.done) * per_it + self.later(per_it))

    def text(self) -> str:
        """The plain line: stage, iterations, speed, the postfix values and the ETAs."""
        pct = 100 * self.done / max(self.total, 1)
        parts = [f"{self.desc}: {self.done}/{self.total} it ({pct:.0f}%)"]
        per_it = self.seconds_per_iteration()
        if per_it is not None:
            parts.append(f"{1 / per_it:.2f} it/s")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        if per_it is not None:
            parts.append(f"ETA stage {duration((self.total - self.done) * per_it)}")
            run = self.run_eta()
            if run:
                parts.append(f"run {run}")
        return ", ".join(parts)

    def _line(self) -> None:
        self.last = self.clock()
        self._said = (self.done, dict(self.postfix))
        line = self.text()
        if self.bar is None:
            print(line, file=self.stream, flush=True)
        if self.log is not None:
            self.log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.enabled and self._said != (self.done, self.postfix):
            self._line()  # where the stage ended (unless the last line said it)
