"""Setting up a training run, step by step: the config (a resumed run's stored one, changes
refused or recorded), the model, the data check before anything is written, the prompt bank,
and the run directory's first files."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from ..config import (
    ExperimentConfig,
    apply_override,
    build_dataclass,
    config_to_dict,
    save_config,
)
from ..data import DataError, check_data
from ..models import DFPIR, DFPIRConfig
from ..models.checkpoint import CheckpointError, check_state_dict
from ..models.compiling import compile_network
from ..models.orders import check_order_record
from ..paths import some_names
from ..prompts import DEGRADATIONS, PromptBank, build_encoder
from .checkpoint_io import load_training_state
from .distributed import DistContext, match_grad_strides, setup
from .errors import ResumeConfigError, RunDirError
from .rundir import (
    ASIDE_NAME,
    config_changes,
    owned_files,
    record_changes,
    refuse_changes,
    remove_stale_temporaries,
    set_aside_owned_files,
)

logger = logging.getLogger(__name__)


def stored_config(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()
                  ) -> ExperimentConfig:
    """The config stored in a run's ``checkpoints/latest.pt`` (with ``--set`` overrides): what
    ``--resume`` continues with when no config is given."""
    latest = Path(run_dir) / "checkpoints" / "latest.pt"
    if not latest.is_file():
        raise RunDirError(no_checkpoint_message(Path(run_dir)))
    return config_of(read_latest(latest), latest, overrides)


#: Config keys that set the shapes of the weights, which a resume cannot change: every field
#: of the model's config but those that only change the computation.
SHAPE_KEYS = tuple(f"model.{f.name}" for f in dataclasses.fields(DFPIRConfig)
                   if f.name not in ("gamma", "pad_multiple"))


def read_latest(latest: Path) -> dict:
    """The training state ``--resume`` continues from; one that cannot be read is an error
    that says how to go on (a stage checkpoint copied over it, or ``--overwrite``)."""
    try:
        return load_training_state(latest)  # refuses non-finite weights
    except CheckpointError as err:
        others = sorted(latest.parent.glob("stage*.pt"), key=lambda p: p.stat().st_mtime)
        how = (f"copy a whole stage checkpoint over it to continue from there (the newest: "
               f"{others[-1].name})" if others else "there is no stage checkpoint to fall "
               "back on")
        raise RunDirError(f"{err}. --resume continues from latest.pt: {how}, or start the run "
                          "again with --overwrite") from None


def config_of(state: dict, latest: Path, overrides=()) -> ExperimentConfig:
    """The config a training checkpoint stores, with ``overrides``."""
    raw = state.get("config")
    if not isinstance(raw, dict):
        raise RunDirError(f"{latest} stores no config; it was not written by this trainer")
    raw = dict(raw)
    origin = {key: f"the config stored in {latest}" for key in raw}
    for override in overrides:
        apply_override(raw, override, origin)
    return build_dataclass(ExperimentConfig, raw, "", origin)


def set_aside_note(run_dir: Path) -> str:
    """What to say when an ``--overwrite`` was killed before its first checkpoint: the run it
    replaced is still in ``<run>/.overwritten/``."""
    aside = run_dir / ASIDE_NAME
    if not aside.is_dir():
        return ""
    return (f". An --overwrite was stopped before its first checkpoint: the run it replaced is "
            f"in {aside} (move its files back into {run_dir} to resume it; another --overwrite "
            "keeps it there until the new run's first checkpoint)")


def no_checkpoint_message(run_dir: Path) -> str:
    latest = run_dir / "checkpoints" / "latest.pt"
    if (run_dir / ASIDE_NAME).is_dir():
        return f"--resume: no checkpoint at {latest}{set_aside_note(run_dir)}"
    if (run_dir / "config.yaml").is_file():
        return (f"--resume: no checkpoint at {latest}: the run was stopped before its first "
                "checkpoint; start it again with --overwrite")
    return f"--resume: no checkpoint at {latest}; {run_dir} holds no run (is --run-dir right?)"


def resolve_config(cfg: ExperimentConfig | None, run_dir: Path, is_main: bool, resume: bool,
                   overwrite: bool, resume_with_changes: bool
                   ) -> tuple[ExperimentConfig, dict | None, dict]:
    """(config, resumed checkpoint or ``None``, changes against the stored config). A resumed
    run continues its stored config (``cfg`` may differ in the resumable keys only, unless
    ``resume_with_changes``); a new run refuses a run directory that holds a run."""
    latest = run_dir / "checkpoints" / "latest.pt"
    if resume:
        state = read_latest(latest)
        stored = config_of(state, latest)
        cfg = cfg or stored
        changes = config_changes(config_to_dict(stored), config_to_dict(cfg))
        if not resume_with_changes:
            refuse_changes(changes)
        shapes = [k for k in changes if k.startswith(SHAPE_KEYS)]
        if shapes:  # not even --resume-with-changes: the weights have the stored shapes
            raise ResumeConfigError(
                f"--resume: {', '.join(shapes)} cannot change on a resume (the weights in "
                f"{latest} have the stored model's shapes: "
                + "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in shapes[:4])
                + "); start a new run for another model")
        return cfg, state, changes
    if is_main and not (run_dir / "config.yaml").exists():
        theirs = [p.relative_to(run_dir).as_posix() for p in owned_files(run_dir)]
        if theirs:  # no run of ours: files of the user's that a run would write over
            raise RunDirError(
                f"{run_dir} is no run (no config.yaml) but holds files of the names a run "
                f"writes: {some_names(theirs, 4)}; move "
                "them or choose another --run-dir (not even --overwrite replaces them)")
    if is_main and (run_dir / "config.yaml").exists() and not overwrite:
        if not any((run_dir / n).exists() for n in ("checkpoints", "train.log", "tensorboard")):
            raise RunDirError(f"{run_dir} holds a config.yaml but nothing else of a run (no "
                              "checkpoints/, train.log): if it is a file of yours, choose "
                              "another --run-dir (--overwrite would replace it)")
        how = ("pass --resume to continue it or --overwrite to start again there"
               if latest.is_file() else "it was stopped before its first checkpoint, so "
               "--resume cannot continue it: pass --overwrite to start again there")
        raise RunDirError(f"{run_dir} already holds a run; {how}{set_aside_note(run_dir)}")
    return cfg, None, {}


def build_model(cfg: ExperimentConfig, ctx: DistContext, state: dict | None, source: str
                ) -> tuple[DFPIR, torch.nn.Module]:
    """(the model, what batches go through: the model, or its DDP wrapper under torchrun).
    Every rank starts from the same weights (``cfg.seed``), then draws its own random
    streams."""
    torch.manual_seed(cfg.seed)
    model = DFPIR(cfg.model).to(ctx.device)
    torch.manual_seed(cfg.seed + ctx.rank)
    if state is not None:
        check_state_dict(model, state["model"], source)
        model.load_state_dict(state["model"])
        orders = state.get("channel_orders")
        if isinstance(orders, dict) and ctx.is_main:  # as eval and restore say it
            for note in check_order_record(model, orders):
                logger.warning("%s (%s)", note, source)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net: torch.nn.Module = model
    if ctx.distributed:
        match_grad_strides(model)  # no copy into DDP's buckets, no warning on every rank
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    return model, compile_network(net, model, cfg.train.compile, ctx.device)


def check_data_first(cfg: ExperimentConfig) -> None:
    """Fail before the first step, with every problem listed (and a classifier that could not
    be trained at the end: fewer than two tasks)."""
    report = check_data(cfg.data)
    if not report.ok:
        logger.error("%s", report.format())
        first = next(f"{s.name} (task {s.task}): {p.splitlines()[0]}"
                     for s in report.sets for p in s.problems)
        more = (f" (and {report.problem_count - 1} more problems, listed above and by "
                "`dfpir prepare --check --config CONFIG`)" if report.problem_count > 1 else "")
        raise DataError(f"the data check failed, nothing was trained: {first}{more}")
    if cfg.classifier.enabled:
        from ..blind.classifier import classifier_classes

        classifier_classes(cfg)


def build_prompts(cfg: ExperimentConfig, device: torch.device
                  ) -> tuple[PromptBank, dict[str, torch.Tensor]]:
    """The prompt bank of every task the run trains or tests, and each task's embedding on the
    device once (a batch's prompts are stacked there, not copied from the host each step)."""
    data = cfg.data
    tasks = sorted({t.task for t in data.train_tasks} | {t.task for t in data.test_sets}
                   | (set(data.builtin.tasks) if data.builtin.enabled else set()),
                   key=list(DEGRADATIONS).index)
    bank = PromptBank(build_encoder(cfg.prompts, device), tasks, cfg.prompts.style)
    return bank, {n: bank(n, device)[0] for n in bank.names}


def open_run_dir(run_dir: Path, cfg: ExperimentConfig, overwrite: bool, changes: dict,
                 resumed_step: int | None, resume_with_changes: bool) -> bool:
    """The run directory's first writes, once every check has passed (rank 0): an old run
    set aside with ``overwrite`` (returns whether it was), stale temporaries removed, the
    config (a new run) or the changes a resume made. ``resumed_step`` is ``None`` for a new
    run."""
    aside = bool(set_aside_owned_files(run_dir)) if overwrite else False
    remove_stale_temporaries(run_dir)
    if resumed_step is None:
        save_config(cfg, run_dir / "config.yaml")
    elif changes:
        path = record_changes(run_dir, changes, resumed_step, resume_with_changes)
        logger.warning("resumed with config changes (recorded in %s): %s", path,
                       ", ".join(changes))
    return aside


def setup_for(cfg: ExperimentConfig) -> DistContext:
    """The process group (or single process) of ``cfg.train``: device and timeouts."""
    t = cfg.train
    return setup(t.device, t.dist_timeout_s, t.dist_wait_timeout_s)
