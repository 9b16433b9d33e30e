"""One way from a checkpoint to a ready model: ``load_experiment``.

Every command that reads a checkpoint (train --resume, eval, restore, visualize, export) goes
through it, so they all follow the same rule for which config wins:

1. **The architecture** (the ``model:`` section) comes from the checkpoint when it stores a
   config (ours do). A YAML ``model:`` key or a ``--set model.*`` that gives a different value is
   an error naming the keys, unless ``override_arch`` (``--override-arch``) says to use them;
   the weights must then still fit. ``--set 'model={}'`` drops the YAML's model keys: the stored
   architecture with another config's data and test sets. A checkpoint without a stored config (the released ones)
   takes the architecture from the YAML, ``--set`` and the defaults.
2. **Everything else** (data, prompts, eval, train) comes from the YAML when one is given, else
   from the config stored in the checkpoint, else the defaults; ``--set`` applies last.
3. Weights without any DGPB (a released Restormer checkpoint, a baseline run) make the model
   the Restormer baseline, the only model they fit.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .config import ExperimentConfig, apply_override, build_dataclass, load_raw
from .device import resolve_device
from .errors import ConfigError
from .models import DFPIR, DFPIRConfig
from .models.checkpoint import CheckpointError, detect_layout, load_weights, read_checkpoint
from .models.orders import check_order_record
from .models.precision import set_backend_precision

__all__ = [
    "LoadedModel",
    "architecture_conflicts",
    "experiment_config",
    "fit_baseline",
    "load_experiment",
    "load_model",
    "say_notes",
    "select_model_config",
    "stored_model_config",
    "trained_tasks",
    "untrained_task_warning",
]

logger = logging.getLogger(__name__)



def stored_model_config(ckpt: Mapping) -> dict | None:
    """The model section of the config a checkpoint of ours stores, or ``None``.

    Accepts ``{"config": <ExperimentConfig as dict>}`` (what training writes) and
    ``{"config": <DFPIRConfig as dict>}``.
    """
    stored = ckpt.get("config") if isinstance(ckpt, Mapping) else None
    if not isinstance(stored, Mapping):
        return None
    if isinstance(stored.get("model"), Mapping):
        return dict(stored["model"])
    if stored and set(stored) <= set(DFPIRConfig.__dataclass_fields__):
        return dict(stored)
    return None


def _model_overrides(overrides: Sequence[str]) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0].strip().startswith("model.")]


def select_model_config(ckpt: Mapping, fallback: DFPIRConfig, overrides: Sequence[str] = (),
                        source: str = "the checkpoint", override_arch: bool = False
                        ) -> tuple[DFPIRConfig, str, list[str]]:
    """The architecture to build for a loaded checkpoint: (config, where it came from, notes).

    The config stored in the checkpoint when there is one (``model.*`` entries of
    ``overrides`` that disagree with it are a ``ConfigError`` unless ``override_arch``), else
    ``fallback`` (the YAML config, overrides included). Weights without any DGPB (a released
    Restormer checkpoint, a baseline run) switch the architecture to the baseline, since that
    is the only model they fit.
    """
    stored = stored_model_config(ckpt)
    if stored is not None:
        origin = {"model": f"the config stored in {source}"}
        raw: dict = {"model": {}}
        for override in _model_overrides(overrides):
            apply_override(raw, override, origin)
        explicit = raw["model"]
        conflicts = architecture_conflicts(stored, explicit, source, origin)
        if conflicts and not override_arch:
            raise _conflict_error(source, conflicts, explicit, stored)
        config = build_dataclass(DFPIRConfig, {**stored, **explicit}, "model", origin)
        where = "checkpoint"
    else:
        config, where = fallback, "config"
    config, notes = fit_baseline(ckpt, config)
    return config, where, notes


def fit_baseline(ckpt: Mapping, config: DFPIRConfig) -> tuple[DFPIRConfig, list[str]]:
    """``config`` as the Restormer baseline when the weights of ``ckpt`` have no DGPB."""
    _, state = detect_layout(ckpt)
    if config.has_dgpb and state and not any(k.startswith("dgpb_") for k in state):
        config = dataclasses.replace(config, ca=False, dgcpm=False, caapm=False)
        return config, ["the checkpoint has no DGPB weights: evaluating it as the Restormer "
                        "baseline (no prompt)"]
    return config, []


@dataclass
class LoadedModel:
    """A model ready for inference and where its architecture and weights came from."""

    model: DFPIR
    config: DFPIRConfig
    layout: str  # ours | dfpir_release | restormer_release | state_dict
    config_source: str  # checkpoint | config
    checkpoint: str
    stored_config: dict | None  # the whole config dict stored in the checkpoint, if any
    notes: list[str] = field(default_factory=list)
    cfg: ExperimentConfig | None = None  # the effective experiment config (load_experiment)
    orders: dict | None = None  # the channel orders recorded at training (dfpir.models.orders)
    classifier_state: dict | None = None  # the blind classifier stored beside the weights


def trained_tasks(loaded: LoadedModel) -> list[str] | None:
    """The tasks a checkpoint was trained on: from its stored config, read as
    ``build_train_dataset`` reads it, else the prompt names its channel orders record; ``None``
    when it records neither (the release's checkpoints)."""
    data = (loaded.stored_config or {}).get("data")
    if isinstance(data, Mapping):
        tasks = [t["task"] for t in data.get("train_tasks") or [] if t.get("repeat", 1) > 0]
        builtin = data.get("builtin") or {}
        if builtin.get("enabled") and builtin.get("use_for_train", True):
            tasks += [t for t in builtin.get("tasks") or [] if t not in tasks]
        return tasks
    names = (loaded.orders or {}).get("names")
    return list(names) if names else None


def untrained_task_warning(loaded: LoadedModel, task: str | None) -> str | None:
    """A warning when ``task`` is one the checkpoint never trained on (it still runs: the
    prompt is only a text), naming the tasks it was trained on; ``None`` otherwise."""
    trained = trained_tasks(loaded)
    if task is None or trained is None or task in trained:
        return None
    return (f"{loaded.checkpoint} was never trained on {task!r} (trained on: "
            f"{', '.join(trained) or 'no task'}); its result for {task!r} is untested")


def load_model(checkpoint: str | os.PathLike | Mapping, fallback: DFPIRConfig,
               overrides: Sequence[str] = (), device: str | torch.device = "cpu",
               *, override_arch: bool = False, _path: str | None = None,
               _source: str | None = None) -> LoadedModel:
    """Read a checkpoint (ours, DFPIR release, Restormer release; a path or an already loaded
    dict), build the matching model, load the weights strictly and move it to ``device`` in
    eval mode.

    Raises ``CheckpointError`` naming the file when it is missing, corrupt or does not fit.
    Prefer ``load_experiment``, which also settles the config; ``_source`` says that
    ``fallback`` is already the architecture to build (and where it came from).
    """
    if isinstance(checkpoint, Mapping):
        path, ckpt = _path or "the checkpoint", checkpoint
    else:
        path = str(checkpoint)
        ckpt = read_checkpoint(path)
    if _source is None:
        config, source, notes = select_model_config(ckpt, fallback, overrides, path,
                                                    override_arch)
    else:
        (config, notes), source = fit_baseline(ckpt, fallback), _source
    model = DFPIR(config)
    try:
        layout = load_weights(model, ckpt)
    except CheckpointError as err:
        hint = ("" if source == "checkpoint" else
                ". The checkpoint stores no model config, so the architecture came from the "
                "config (its model: section, --config, --set model.*): make it match the weights")
        if isinstance(checkpoint, Mapping) and _path is None:
            raise CheckpointError(f"{err}{hint}") from err
        raise CheckpointError(f"{path}: {err}{hint}") from err
    stored = ckpt.get("config") if isinstance(ckpt.get("config"), Mapping) else None
    model.to(resolve_device(device)).eval()
    orders = ckpt.get("channel_orders") if isinstance(ckpt.get("channel_orders"), Mapping) \
        else None
    if orders is not None:
        notes += check_order_record(model, orders)
    classifier = ckpt.get("classifier") if isinstance(ckpt.get("classifier"), Mapping) \
        else None
    return LoadedModel(model, config, layout, source, path, stored, notes, orders=orders,
                       classifier_state=classifier)


def architecture_conflicts(stored: Mapping, explicit: Mapping, source: str = "the checkpoint",
                           origin: dict[str, str] | None = None) -> list[str]:
    """The ``model.*`` keys whose value in ``explicit`` (what a YAML or ``--set`` gave) differs
    from the architecture ``stored`` in a checkpoint, compared after conversion."""
    try:
        base = build_dataclass(DFPIRConfig, dict(stored), "model",
                               {"model": f"the config stored in {source}"})
    except ConfigError as err:
        raise ConfigError(f"the model config stored in {source} does not fit this version "
                          f"of dfpir: {err}") from err
    if not explicit:
        return []
    asked = build_dataclass(DFPIRConfig, {**stored, **explicit}, "model", origin)
    return [f"model.{f.name}" for f in dataclasses.fields(DFPIRConfig)
            if getattr(base, f.name) != getattr(asked, f.name)]


def _conflict_error(source: str, conflicts: Sequence[str], explicit: Mapping,
                    stored: Mapping) -> ConfigError:
    given = ", ".join(f"{k}={explicit[k.split('.', 1)[1]]!r} (stored: "
                      f"{stored.get(k.split('.', 1)[1])!r})" for k in conflicts)
    return ConfigError(f"{source} stores its architecture and the config asks for another: "
                       f"{given}. Drop those keys from the YAML/--set, or pass "
                       "--override-arch to build the model they describe")


def experiment_config(ckpt: Mapping, config: str | os.PathLike | None = None,
                      overrides: Sequence[str] = (), *, override_arch: bool = False,
                      source: str = "the checkpoint") -> tuple[ExperimentConfig, str]:
    """The effective config for using checkpoint ``ckpt`` (already read) and where its
    architecture came from ("checkpoint" or "config"), by the rule of this module's docstring.

    Raises ``ConfigError`` naming the keys when the YAML or ``--set`` asks for another
    architecture than the stored one and ``override_arch`` is false.
    """
    stored = ckpt.get("config") if isinstance(ckpt, Mapping) else None
    stored = stored if isinstance(stored, Mapping) else None
    stored_model = stored_model_config(ckpt)
    origin: dict[str, str] = {}
    if config is not None:
        raw = load_raw(config, origin)
    elif stored is not None and stored_model is not None and "model" in stored:
        raw = copy.deepcopy(dict(stored))
        origin.update({key: f"the config stored in {source}" for key in raw})
    else:
        raw = {}
    explicit = dict(raw.get("model") or {}) if config is not None else {}
    for override in overrides:
        apply_override(raw, override, origin)
        key = override.split("=", 1)[0].strip()
        if key == "model":  # --set 'model={}': none of the YAML's model keys, the stored ones
            explicit = dict(raw["model"] or {})
        elif key.startswith("model."):
            explicit[key.split(".", 1)[1]] = raw["model"][key.split(".", 1)[1]]
    if stored_model is None:
        return build_dataclass(ExperimentConfig, raw, "", origin), "config"
    conflicts = architecture_conflicts(stored_model, explicit, source, origin)
    if conflicts and not override_arch:
        raise _conflict_error(source, conflicts, explicit, stored_model)
    raw["model"] = {**stored_model, **(explicit if override_arch else {})}
    origin["model"] = f"the config stored in {source}"
    return build_dataclass(ExperimentConfig, raw, "", origin), "checkpoint"


def load_experiment(checkpoint: str | os.PathLike | Mapping,
                    config: str | os.PathLike | None = None, overrides: Sequence[str] = (),
                    device: str | torch.device | None = None, *, override_arch: bool = False,
                    name: str | None = None) -> LoadedModel:
    """Checkpoint (+ optional YAML and ``--set`` overrides) -> a ready model in eval mode on
    ``device`` (default: the config's ``eval.device``) and its effective config
    (``LoadedModel.cfg``). The one loading path of every command; see the module docstring
    for which config wins. Sets the config's ``eval.tf32``/``eval.cudnn_benchmark`` policy. Raises ``ConfigError``, ``CheckpointError`` or ``DeviceError``.
    ``name`` names an already read checkpoint (a mapping) in messages.
    """
    if isinstance(checkpoint, Mapping):
        path, ckpt = name or "the checkpoint", checkpoint
    else:
        path = str(checkpoint)
        ckpt = read_checkpoint(path)
    cfg, source = experiment_config(ckpt, config, overrides, override_arch=override_arch,
                                    source=path)
    resolved = resolve_device(device if device is not None else cfg.eval.device)
    set_backend_precision(cfg.eval.tf32, cfg.eval.cudnn_benchmark)
    loaded = load_model(ckpt, cfg.model, (), resolved, _path=path, _source=source)
    loaded.cfg = dataclasses.replace(cfg, model=loaded.config)
    return loaded


def say_notes(notes: Sequence[str], log) -> None:
    """Log a ``LoadedModel``'s notes: ``warning: ...`` ones (channel orders that no rounding
    explains) as warnings, the others as ``note: ...``."""
    for note in notes:
        if note.startswith("warning: "):
            log.warning("%s", note)
        else:
            log.info("note: %s", note)
