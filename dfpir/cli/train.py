"""``dfpir train`` (``scripts/train.py``): train DFPIR from a YAML config, on one device or under
torchrun.

    dfpir train --config configs/five_task.yaml
    dfpir train --config configs/three_task.yaml --set model.gamma=0.7 --run-dir runs/g07
    dfpir train --resume --run-dir runs/five_task
    torchrun --nproc_per_node 4 scripts/train.py --config configs/five_task.yaml

Every check (config values, device, data folders, prompt encoder) runs before the run directory
is created, so a bad command leaves nothing on disk. The run directory is locked while a run
uses it. ``--resume`` continues with the config stored in the run's ``latest.pt``; a config
that differs in anything but the resumable keys is an error naming them, unless
``--resume-with-changes`` (which records the change in ``config_changes.yaml``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import ConfigError, FlagOverride, load_config
from ..errors import DfpirError, OutputPlaceError
from ..outputs import FULL, check_name_lengths, check_output_place
from ..train import StopNow, TrainingInterrupted, stored_config, train
from ..train.rundir import finished_stages
from .common import add_config, add_device, run_cli

__all__ = ["build_parser", "main", "run"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir train`` / ``scripts/train.py``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Train DFPIR from a YAML config, on one device or under torchrun.")
    add_config(parser, help="YAML experiment config (with --resume: optional, default the "
                            "run's stored config)")
    add_device(parser)
    parser.add_argument("--run-dir", help="where to write the run (default: output_dir/name)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir with its stored config")
    parser.add_argument("--resume-with-changes", action="store_true",
                        help="--resume, applying a config that differs from the stored one "
                             "(recorded in the run's config_changes.yaml)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in a run directory that already holds a run "
                             "(deletes that run's checkpoints, logs and exports)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Train; returns the exit status (130/143 when SIGINT/SIGTERM stopped it after saving)."""
    # under torchrun rank 0 says how the run goes; the others only warn (and name errors)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    logging.getLogger("dfpir").setLevel(logging.INFO if main_rank else logging.WARNING)
    overrides = list(args.overrides)
    if args.device is not None:
        overrides.append(FlagOverride(f"train.device={json.dumps(args.device)}",
                                      f"--device {args.device}"))
    resume = args.resume or args.resume_with_changes
    if resume and args.overwrite:
        raise ConfigError("--resume continues the run and --overwrite starts it again: give "
                          "one of them")
    if not args.config and not (resume and args.run_dir):
        raise ConfigError("--config is required (only --resume --run-dir DIR can do without)")
    if args.run_dir:  # before its stored config is read: a file is not "no run"
        check_output_place(args.run_dir, "dir", "--run-dir")
    cfg = (load_config(args.config, overrides) if args.config
           else stored_config(args.run_dir, overrides))
    run_dir = Path(args.run_dir or Path(cfg.output_dir) / cfg.name)
    if not args.run_dir:
        check_output_place(run_dir, "dir", "output_dir/name")
    if args.config and not resume and run_dir.resolve() in Path(args.config).resolve().parents:
        raise ConfigError(f"--config {args.config} lies in the run directory {run_dir}, which "
                          "a new run writes (its own config.yaml, checkpoints, logs) and "
                          "--overwrite replaces: keep the config elsewhere or choose another "
                          "--run-dir")
    if cfg.data.cache_dir:  # the decode cache is written during training (on by default)
        try:
            check_output_place(cfg.data.cache_dir, "dir", "data.cache_dir")
        except OutputPlaceError as err:
            if err.errno not in FULL:
                raise
            logging.getLogger("dfpir").warning(  # a speed-up: training goes on decoding
                "warning: %s; training goes on without adding to the decode cache", err)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for index, stage in enumerate(cfg.train.stages):  # its checkpoint's name, said now
        check_name_lengths(run_dir / "checkpoints" / f"stage{index + 1}_{stage.name}.pt",
                           f"train.stages[{index}].name")
        crops = 2 * stage.batch_size * stage.patch_size ** 2 * 3 * 4  # degraded + clean, fp32
        if crops > memory:  # found now, not at the first batch after the run folder is made
            raise ConfigError(f"train.stages[{index}]: a batch of {stage.batch_size} crops of "
                              f"{stage.patch_size}x{stage.patch_size} needs "
                              f"{crops / 2**30:.0f} GiB for its images alone, more than this "
                              f"machine's {memory / 2**30:.0f} GiB: a smaller patch_size or "
                              "batch_size")
    done = finished_stages(run_dir) if resume else None
    # without final_results.md the run's end (classifier, final evaluation) is still to do
    final = run_dir / "final_results.md"
    if done is not None and done >= len(cfg.train.stages) and final.is_file():
        if main_rank:  # under torchrun: once
            print(f"the run in {run_dir} had finished (all {done} stage(s), final results in "
                  f"{final}): nothing to resume. To train again, start a "
                  "new run (another --run-dir, or --overwrite)")
        return 0
    def started() -> None:  # where to look, once it is there, before the long part
        if main_rank:
            print(f"run folder: {run_dir}", flush=True)

    try:
        train(cfg, run_dir, resume=resume, overwrite=args.overwrite,
              resume_with_changes=args.resume_with_changes, started=started)
    except (TrainingInterrupted, StopNow) as err:
        if main_rank:
            print(f"stopped: {err} (run folder: {run_dir})", file=sys.stderr)
        return err.exit_code
    if main_rank:
        print(f"done: the run is in {run_dir}")
    return 0


#: How long a torchrun worker other than its node's first waits before it says an error: when
#: that first rank found the same one (a config error: every rank reads the same config),
#: torchrun ends the waiting ranks once it exits (it looks every 0.1 s by default), so the
#: error is said once a node, not once a rank. An error of this rank's own is said after it.
SAY_ONCE_WAIT_S = 5.0


def _said_once_a_node(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except DfpirError:
        if ("TORCHELASTIC_RUN_ID" in os.environ
                and os.environ.get("LOCAL_RANK", "0") != "0" and not args.debug):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # torchrun's end: quietly
            time.sleep(SAY_ONCE_WAIT_S)
        raise


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir train``: 0; 2 with ``error: ...`` for a bad config, device, data folder, prompt
    encoder, run directory in use or already holding a run, a diverged loss, an unusable
    checkpoint or a full disk; 130/143 when stopped by SIGINT/SIGTERM after saving."""
    code = run_cli(build_parser(prog), _said_once_a_node, argv,
                   sigterm_stops=False)  # the trainer's own
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun worker: its work is on disk
        # Leave without the interpreter's teardown: with the gloo group's threads and the
        # daemon threads still there, it sometimes ended a worker that had saved and
        # stopped in SIGABRT ("terminate called without an active exception") instead of its
        # exit status. Everything it wrote is closed (checkpoints fsynced, logs closed).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
