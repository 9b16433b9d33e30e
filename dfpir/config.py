"""YAML experiment configs: inheritance (``base:``), command-line overrides, strict checking.

A config file is a mapping with the sections of ``ExperimentConfig``. ``base: other.yaml`` (a
path relative to the file) inherits another config: mappings merge key by key, everything else
(lists included) is replaced. ``--set model.gamma=0.7`` overrides any value; the value is read as
YAML. Unknown keys and wrong types are errors that name the key and the file that set it.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from .data.config import DataConfig
from .models import DFPIRConfig
from .prompts import PromptConfig


class ConfigError(ValueError):
    """A config that cannot be read or does not fit the schema."""


@dataclass
class StageConfig:
    """One training stage. The paper: 80 epochs at lr 1e-4, patch 128, batch 5, then a
    fine-tune of 5 epochs at lr 1e-5, patch 192, batch 3 starting from the first's weights."""

    name: str = "main"
    epochs: int = 80
    lr: float = 1e-4
    patch_size: int = 128
    batch_size: int = 5
    max_iters: int = 0  # stop the stage after this many iterations (0 = run all epochs)


def _paper_stages() -> list[StageConfig]:
    return [
        StageConfig("main", epochs=80, lr=1e-4, patch_size=128, batch_size=5),
        StageConfig("finetune", epochs=5, lr=1e-5, patch_size=192, batch_size=3),
    ]


@dataclass
class TrainConfig:
    """Optimisation, schedule, precision, logging and checkpointing."""

    stages: list[StageConfig] = field(default_factory=_paper_stages)
    loss: str = "l1"  # l1 (the paper) | charbonnier
    loss_weighting: str = "none"  # none (the paper) | input: each item's loss / its input's loss
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # cosine (the release) | constant
    scheduler_step: str = "epoch"  # epoch (the release) | iteration
    eta_min: float = 0.0
    grad_clip: float = 0.0  # max gradient norm (0 = off, the release)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast
    channels_last: bool = False
    compile: bool = False
    keep_freed_memory: bool = True  # CPU: keep freed memory in the process (see dfpir.benchmark)
    log_every: int = 20  # iterations between TensorBoard scalars
    val_every: int = 1  # epochs between validations (0 = only at the end of each stage)
    val_max_images: int = 0  # validate on the first N images of each test set (0 = all)
    save_every_epochs: int = 1  # epochs between numbered checkpoints
    save_every_iters: int = 1000  # iterations between 'latest' checkpoints
    sample_images: int = 4  # restored samples written to TensorBoard at each validation


@dataclass
class EvalConfig:
    """Evaluation and restoration."""

    tile: int = 0  # tile size for memory-bounded inference (0 = whole image, the protocol)
    tile_overlap: int = 32
    quantize: bool = False  # round outputs to uint8 before the metrics (as saved images would)
    save_images: bool = False
    device: str = "auto"
    amp: str = "none"  # none (fp32, the protocol) | bf16 | fp16 autocast
    max_images: int = 0  # evaluate only the first N images of each test set (0 = all)


@dataclass
class ExperimentConfig:
    """A whole experiment: model, prompts, data, training and evaluation."""

    name: str = "dfpir"
    seed: int = 0
    output_dir: str = "runs"
    model: DFPIRConfig = field(default_factory=DFPIRConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ------------------------------------------------------------------ reading and merging


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    return data


def _merge(base: dict, top: dict, origin: dict[str, str], source: str, prefix: str = "") -> dict:
    out = dict(base)
    for key, value in top.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, origin, source, dotted + ".")
        else:
            out[key] = value
            _mark(value, dotted, origin, source)
    return out


def _mark(value: Any, dotted: str, origin: dict[str, str], source: str) -> None:
    origin[dotted] = source
    if isinstance(value, dict):
        for k, v in value.items():
            _mark(v, f"{dotted}.{k}", origin, source)


def load_raw(path: str | os.PathLike, origin: dict[str, str] | None = None,
             _seen: tuple[Path, ...] = ()) -> dict:
    """The merged mapping of a config file and its ``base:`` chain."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"config inheritance loops: {' -> '.join(map(str, _seen + (path,)))}")
    origin = {} if origin is None else origin
    data = _read_yaml(path)
    base = data.pop("base", None)
    merged: dict = {}
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: 'base' must be a path, got {base!r}")
        merged = load_raw(path.parent / base, origin, _seen + (path,))
    return _merge(merged, data, origin, str(path))


def apply_override(raw: dict, override: str, origin: dict[str, str]) -> None:
    """Apply ``a.b.c=value`` (value read as YAML) to a raw config mapping."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    dotted, text = override.split("=", 1)
    keys = dotted.strip().split(".")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {override!r}: the value is not valid YAML: {err}") from err
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {key} is not a section")
    node[keys[-1]] = value
    _mark(value, dotted.strip(), origin, f"--set {override}")


# ------------------------------------------------------------------ strict conversion


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _fail(where: str, origin: dict[str, str], message: str) -> ConfigError:
    parents = (k for k in sorted(origin, key=len, reverse=True)
               if where.startswith((k + ".", k + "[")))
    source = origin.get(where) or next((origin[k] for k in parents), None)
    return ConfigError(f"{where}: {message}" + (f" (set in {source})" if source else ""))


def convert(value: Any, annotation: Any, where: str, origin: dict[str, str]) -> Any:
    """``value`` checked against (and built into) ``annotation``; errors name ``where``."""
    hint = get_origin(annotation)
    if hint is Union or hint is types.UnionType:
        args = get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg, where, origin)
            except ConfigError as err:
                errors.append(str(err))
        raise errors[0] if len(errors) == 1 else _fail(
            where, origin, f"expected {_type_name(annotation)}, got {value!r}"
        )
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise _fail(where, origin, f"expected a mapping of {annotation.__name__} fields, "
                                       f"got {value!r}")
        return build_dataclass(annotation, value, where, origin)
    if hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(where, origin, f"expected a list, got {value!r}")
        (item,) = get_args(annotation)[:1] or (Any,)
        return [convert(v, item, f"{where}[{i}]", origin) for i, v in enumerate(value)]
    if hint is dict:
        if not isinstance(value, dict):
            raise _fail(where, origin, f"expected a mapping, got {value!r}")
        key_t, val_t = get_args(annotation) or (Any, Any)
        return {convert(k, key_t, where, origin): convert(v, val_t, f"{where}.{k}", origin)
                for k, v in value.items()}
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise _fail(where, origin, f"expected true or false, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, origin, f"expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, origin, f"expected an integer, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise _fail(where, origin, f"expected a string, got {value!r}")
        return value
    raise _fail(where, origin, f"unsupported field type {annotation!r}")


def build_dataclass(cls: type, values: dict, where: str = "",
                    origin: dict[str, str] | None = None) -> Any:
    """A ``cls`` instance from a mapping; unknown keys and wrong types raise ``ConfigError``."""
    origin = origin or {}
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    prefix = f"{where}." if where else ""
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {names}"
            raise _fail(f"{prefix}{key}", origin, f"unknown key{hint}")
    kwargs = {k: convert(v, hints[k], f"{prefix}{k}", origin) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise _fail(where or cls.__name__, origin, str(err)) from err


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = ()
                ) -> ExperimentConfig:
    """The experiment config of a YAML file (or the defaults) with ``--set`` overrides."""
    origin: dict[str, str] = {}
    raw = load_raw(path, origin) if path is not None else {}
    for override in overrides:
        apply_override(raw, override, origin)
    return build_dataclass(ExperimentConfig, raw, "", origin)


def config_to_dict(cfg: Any) -> dict:
    """A plain mapping (YAML-safe) of a config dataclass."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the effective config, so a run records exactly what it ran with."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
