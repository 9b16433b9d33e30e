"""What every command shares: the common flags (``--config``, ``--set``, ``--ckpt``,
``--device``, ``--out``, ``--override-arch``, ``--debug``), console logging, and the one error
policy: a ``DfpirError`` (a problem the user can fix) prints ``error: <message>`` and exits
with status 2; anything else is a bug and keeps its traceback. ``--debug`` shows the traceback
of user errors too.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from ..errors import DfpirError

__all__ = [
    "add_amp",
    "add_ckpt",
    "add_config",
    "add_device",
    "add_override_arch",
    "float_in",
    "int_in",
    "run_cli",
    "setup_cli_logging",
]


def add_config(parser: argparse.ArgumentParser, required: bool = False,
               help: str = "experiment YAML (default: the built-in defaults)") -> None:
    """``--config FILE`` and the repeatable ``--set KEY=VALUE`` override."""
    parser.add_argument("--config", required=required, help=help)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config value, e.g. model.gamma=0.7 or "
                             "data.data_root=/datasets (repeatable)")


def add_ckpt(parser: argparse.ArgumentParser, required: bool = True,
             help: str = "checkpoint: ours, a released DFPIR one or a released Restormer one"
             ) -> None:
    """``--ckpt FILE``."""
    parser.add_argument("--ckpt", required=required, help=help)


def add_device(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--device``: auto, cpu, cuda or cuda:N (default: the config's)."""
    parser.add_argument("--device", default=default,
                        help="auto, cpu, cuda or cuda:N (default: the config's device)")


def add_amp(parser: argparse.ArgumentParser) -> None:
    """``--amp``: autocast precision for inference (default: the config's ``eval.amp``)."""
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None,
                        help="autocast precision (default: eval.amp if the config has it, else "
                        "none, the protocol)")


def add_override_arch(parser: argparse.ArgumentParser) -> None:
    """``--override-arch``: let the YAML/--set model keys replace a checkpoint's stored
    architecture (see ``dfpir.loading``)."""
    parser.add_argument("--override-arch", action="store_true",
                        help="build the architecture the YAML/--set model.* keys describe even "
                             "where the checkpoint stores another (the weights must still fit)")


def float_in(low: float, high: float | None = None, above: bool = False
             ) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number ``>= low`` (``> low`` when ``above``) and
    ``<= high``: a bad value is argparse's error before any work."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if (not math.isfinite(value) or value < low or (above and value == low)
                or (high is not None and value > high)):
            span = (f"{'>' if above else '>='} {low:g}"
                    + ("" if high is None else f" and <= {high:g}"))
            raise argparse.ArgumentTypeError(f"expected a finite number {span}, got {text}")
        return value

    return parse


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number in ``[low, high]``: a bad value is argparse's
    ``error: argument --flag: ...`` (exit 2) before any work, never a silent default."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, got {value}")
        return value

    return parse


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it per test)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_cli_logging() -> None:
    """Show the package's notes and warnings (bare messages on stderr) for the commands,
    unless the application has configured logging itself."""
    package = logging.getLogger("dfpir")
    if package.handlers or logging.getLogger().handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    package.addHandler(handler)
    package.setLevel(logging.INFO)


class Stopped(KeyboardInterrupt):  # noqa: N818 (like KeyboardInterrupt)
    """SIGTERM (what ``kill`` and a cluster's scheduler send) during a command: raised like
    Ctrl-C's ``KeyboardInterrupt``, so that the command stops the same way (temporary files
    removed, what was written said) instead of vanishing mid-write."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def run_cli(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
            argv: Sequence[str] | None = None, sigterm_stops: bool = True) -> int:
    """Parse ``argv``, run the command and turn a ``DfpirError`` into ``error: ...`` and exit
    status 2 (a traceback only with ``--debug``). Ctrl-C, and SIGTERM when ``sigterm_stops``
    (training has its own stop: it saves first), end the command with one ``stopped`` line
    and 128 + the signal, no traceback. Returns the exit status."""
    if not any("--debug" in action.option_strings for action in parser._actions):
        parser.add_argument("--debug", action="store_true",
                            help="show the traceback of user errors too")
    args = parser.parse_args(argv)
    setup_cli_logging()
    previous = None
    if (sigterm_stops and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt as err:
        if args.debug or not (isinstance(err, Stopped) or type(err) is KeyboardInterrupt):
            raise  # training's own stops (StopNow) are its to report
        signum = getattr(err, "signum", signal.SIGINT)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"stopped ({name})", file=sys.stderr)
        return 128 + signum
    except DfpirError as err:
        if args.debug:
            raise
        print(f"error: {user_message(err)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:  # sizes the machine cannot hold
        text = str(err).splitlines()[0] if str(err) else ""
        if args.debug or not (isinstance(err, MemoryError) or "can't allocate memory" in text
                              or "out of memory" in text.lower()):
            raise
        if "tried to allocate" in text:  # torch's: keep the size, drop the C++ location
            text = text[text.index("tried to allocate"):].split(" bytes")[0] + " bytes"
        print(f"error: out of memory ({type(err).__name__}: {text[:160]}); the sizes asked "
              "for do not fit: a smaller model.dim, patch_size or batch_size (training), "
              "--tile (restoring), fewer or smaller images", file=sys.stderr)
        return 2
    except OSError as err:  # a path the user gave that no file system can hold
        if err.errno != errno.ENAMETOOLONG or args.debug:
            raise
        name = str(err.filename or "")
        shown = name if len(name) <= 80 else f"{name[:60]}...{name[-16:]}"
        print(f"error: {shown}: the name is longer than the file system allows (usually 255 "
              "bytes a name, 4096 a path); choose a shorter one", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def user_message(err: BaseException) -> str:
    """The error's own message; one raised in a DataLoader worker, which torch re-raises with
    the worker's traceback prepended, loses that traceback (``--debug`` shows it)."""
    text = str(err)
    marker = f"{type(err).__name__}: "
    if text.startswith("Caught ") and "Original Traceback" in text and marker in text:
        return text[text.rindex(marker) + len(marker):].strip()
    return text
