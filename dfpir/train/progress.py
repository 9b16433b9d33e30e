"""A stage's progress on stderr: a tqdm bar on a terminal, plain lines in a log file.

A bar redrawn at every step writes a carriage-return line per step into a cluster log
(hundreds of MB over a five-task run); off a terminal the progress is one plain line at most
every ``every_s`` seconds instead."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm


class StageProgress:
    """``update`` after each step, ``set_postfix`` when new values (loss, lr) are known."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool = True,
                 every_s: float = 30.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done, self.desc = total, initial, desc
        self.enabled, self.every_s, self.clock = enabled, every_s, clock
        self.start = self.last = clock()
        self.postfix: dict[str, object] = {}
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="it", file=self.stream,
                        dynamic_ncols=True, mininterval=0.1) if enabled and isatty else None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and self.clock() - self.last >= self.every_s:
            self._line()

    def set_postfix(self, **values: object) -> None:
        """Shown at the bar's next redraw (never one of its own) or in the next plain line."""
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

    def _line(self) -> None:
        self.last = now = self.clock()
        elapsed = now - self.start
        rate = f", {self.done / elapsed:.2f} it/s" if elapsed > 0 else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        pct = 100 * self.done / max(self.total, 1)
        print(f"{self.desc}: {self.done}/{self.total} it ({pct:.0f}%){rate}{extra}",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self._line()  # where the stage ended
