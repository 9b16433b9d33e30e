"""``torchrun`` with exit statuses a cluster can read (``dfpir torchrun``).

torchrun (``torch.distributed.run``) reports a stop as a failure: signalled itself (SLURM's
``scancel`` of the job step) it forwards the signal to its workers, then exits 1 with a
``SignalException`` traceback; when its workers stop on a signal (each saved ``latest.pt`` and
exited 128 + the signal) it prints a ``ChildFailedError`` report and exits 1. ``launch`` runs
the same launcher with the same arguments and, in those two cases, prints one line and exits
128 + the signal (143 for SIGTERM, 130 for SIGINT), as a single-process run does. A real
failure is one line saying which rank failed how (torchrun's 20-line report, in short), exit 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence

__all__ = ["STOP_SIGNALS", "failures", "launch", "shared_exit", "stopped_by"]

#: The signals the trainer treats as a stop request (save ``latest.pt``, exit 128 + signal).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def shared_exit(exit_codes: Sequence[int]) -> int | None:
    """The one exit status the failed workers left, or ``None`` when they left several. A
    worker ended by SIGTERM (a negative status) is torchrun ending the group once the first
    one exited: not a status of its own."""
    exits = {code for code in exit_codes if code >= 0}
    if len(exits) != 1 or any(code < 0 and code != -signal.SIGTERM for code in exit_codes):
        return None
    return exits.pop()


def stopped_by(exit_codes: Sequence[int]) -> signal.Signals | None:
    """The stop signal the failed workers exited for (exit status 128 + the signal), or
    ``None`` when any of them failed otherwise (``shared_exit``)."""
    status = shared_exit(exit_codes)
    number = None if status is None else status - 128
    return signal.Signals(number) if number in STOP_SIGNALS else None


def failures(by_rank: Mapping[int, object]) -> str:
    """How each failed worker ended, in a line (what torchrun's 20-line report says of them:
    the rank, its exit status or the signal that ended it, its process id)."""
    said = []
    for rank, failure in sorted(by_rank.items()):
        code = failure.exitcode
        how = (f"ended by {signal.Signals(-code).name}" if code < 0 and -code in
               signal.valid_signals() else f"exit status {code}")
        said.append(f"rank {rank}: {how}, pid {failure.pid}")
    return "; ".join(said)


def launch(argv: Sequence[str], prog: str = "dfpir torchrun") -> int:
    """Run ``torchrun`` with ``argv`` (its own options, then the script and its arguments).
    Its options and the script are checked first: a bad one is one ``error:`` line, status 2."""
    from torch.distributed.run import get_args_parser, run

    from ..paths import not_a_file

    parser = get_args_parser()
    parser.prog = prog

    def short_error(message: str) -> None:  # not torchrun's 20-line usage first
        print(f"error: {prog}: {message} (torchrun --help lists its options)", file=sys.stderr)
        raise SystemExit(2)

    parser.error = short_error  # type: ignore[method-assign]
    args = parser.parse_args(list(argv))  # its own usage errors: status 2
    nproc = str(args.nproc_per_node)
    if nproc.lstrip("-").isdigit() and int(nproc) < 1:  # torchrun: a bare AssertionError
        print(f"error: {prog}: --nproc-per-node must be a count >= 1 (or gpu, cpu, auto), got "
              f"{nproc}", file=sys.stderr)
        return 2
    if not args.module and not args.no_python:
        problem = not_a_file(args.training_script)
        if problem:
            print(f"error: the training script {args.training_script} {problem}",
                  file=sys.stderr)
            return 2
    for name, known in logging.root.manager.loggerDict.items():  # its agent's W/E lines:
        if name.startswith("torch.distributed.elastic") and isinstance(known, logging.Logger):
            known.setLevel(logging.CRITICAL)  # the lines below say how the workers ended
    own_logs = None
    if getattr(args, "log_dir", None) is None:  # torchrun's default: a folder left in /tmp
        own_logs = tempfile.TemporaryDirectory(prefix="dfpir_torchrun_")
        args.log_dir = own_logs.name
    try:
        return _run(run, args, prog)
    finally:
        if own_logs is not None:
            own_logs.cleanup()


def _run(run: Callable, args: argparse.Namespace, prog: str) -> int:
    """torchrun's ``run``, its ends turned into exit statuses."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        run(args)
    except (ValueError, AssertionError) as err:  # torchrun's checks of its options
        # (--nproc_per_node abc: ValueError; 0, or --nnodes 2:1: AssertionError, maybe bare)
        print(f"error: {prog}: {str(err) or 'torchrun refused its options (see --help)'}",
              file=sys.stderr)
        return 2
    except SignalException as err:
        name = signal.Signals(err.sigval).name
        print(f"torchrun: stopped by {name}, which it passed on to its workers (their lines "
              "above say what each saved)", file=sys.stderr)
        return 128 + int(err.sigval)
    except ChildFailedError as err:
        codes = [failure.exitcode for failure in err.failures.values()]
        stop = stopped_by(codes)
        if shared_exit(codes) == 2:  # dfpir's user errors
            print("torchrun: the workers stopped on the error above (exit status 2); nothing "
                  "to do with torchrun itself", file=sys.stderr)
            return 2
        if stop is None:
            print(f"torchrun: the workers failed: {failures(err.failures)} (what they could say "
                  "is above)", file=sys.stderr)
            return 1
        print(f"torchrun: the workers stopped on {stop.name} (exit status {128 + stop}); "
              f"see their lines above", file=sys.stderr)
        return 128 + int(stop)
    return 0
