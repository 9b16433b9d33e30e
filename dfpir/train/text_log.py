"""The run's plain-text log, ``<run>/train.log`` (rank 0): what the console shows of a run (the
package's messages, progress lines, validation tables), with the time, appended across
resumes, so that a multi-day job can be followed from its folder or its cluster log."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TextIO

LOG_NAME = "train.log"


class TextLog:
    """Until ``open`` (and on the other ranks) it writes nothing."""

    def __init__(self) -> None:
        self.stream: TextIO | None = None
        self.handler: logging.Handler | None = None

    def open(self, run_dir: Path, resumed_step: int | None = None) -> None:
        """Append to the run's log (a resumed run's lines follow its earlier ones, after a
        line that says so; a new run's log is new: ``--overwrite`` sets the old one aside)."""
        self.stream = open(run_dir / LOG_NAME, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self.line(f"---- dfpir train (pid {os.getpid()}): "
                  + ("a new run" if resumed_step is None else f"resumed at step {resumed_step}")
                  + " ----")
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(message)s",
                                                    "%Y-%m-%d %H:%M:%S"))
        logging.getLogger("dfpir").addHandler(self.handler)

    def line(self, text: str) -> None:
        """``text`` (one or more lines), each with the time, as the log records have it."""
        if self.stream is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.stream.write("".join(f"{stamp} {row}\n" for row in text.splitlines()))

    def close(self) -> None:
        if self.handler is not None:
            logging.getLogger("dfpir").removeHandler(self.handler)
            self.handler = None
        if self.stream is not None:
            self.stream.close()
            self.stream = None
