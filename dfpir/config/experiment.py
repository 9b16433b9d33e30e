"""YAML experiment configs: inheritance (``base:``), command-line overrides, strict checking.

A config file is a mapping with the sections of ``ExperimentConfig``. ``base: other.yaml`` (a
path relative to the file) inherits another config: mappings merge key by key, everything else
(lists included) is replaced. ``--set model.gamma=0.7`` overrides any value; the value is read as
YAML; a number indexes a list (``--set train.stages.0.epochs=1``). Unknown keys and wrong types
are errors that name the key and the file that set it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.config import DataConfig, data_config_from_dict
from ..errors import ConfigError
from ..models import DFPIRConfig
from ..paths import not_a_file
from ..prompts import PromptConfig
from ..schema import build_dataclass, check_plain_name, convert
from .classifier import ClassifierConfig
from .train import (
    Amp,
    Device,
    StageConfig,
    TrainConfig,
    check_device_name,
)

__all__ = [
    "ConfigError",
    "EvalConfig",
    "ExperimentConfig",
    "FlagOverride",
    "StageConfig",
    "TrainConfig",
    "apply_override",
    "build_dataclass",
    "check_device_name",
    "config_to_dict",
    "convert",
    "data_config_from_yaml",
    "load_config",
    "load_raw",
    "save_config",
]

@dataclass
class EvalConfig:
    """Evaluation and restoration."""

    tile: int = 0  # tile size for memory-bounded inference (0 = whole image, the protocol)
    tile_overlap: int = 32  # overlap of neighbouring tiles, pixels
    quantize: bool = False  # round outputs to uint8 before the metrics (as saved images would)
    save_images: bool = False  # write the restored test images
    device: Device = "auto"  # auto, cpu, cuda or cuda:N
    amp: Amp = "none"  # none (fp32, the protocol) | bf16 | fp16 autocast
    tf32: bool = False  # false: full fp32 (the protocol); see TrainConfig.tf32
    cudnn_benchmark: bool = False  # cuDNN picks its fastest algorithm per shape (rounding only)
    max_images: int = 0  # evaluate only the first N images of each test set (0 = all)

    def __post_init__(self) -> None:
        if self.tile < 0:
            raise ValueError(f"tile must be >= 0 (0 = whole image), got {self.tile}")
        if self.tile_overlap < 0:
            raise ValueError(f"tile_overlap must be >= 0, got {self.tile_overlap}")
        if self.tile and self.tile_overlap >= self.tile:
            raise ValueError(f"tile ({self.tile}) must be larger than tile_overlap "
                             f"({self.tile_overlap})")
        if self.max_images < 0:
            raise ValueError(f"max_images must be >= 0 (0 = all), got {self.max_images}")


@dataclass
class ExperimentConfig:
    """A whole experiment: model, prompts, data, training and evaluation."""

    name: str = "dfpir"  # the run's name: its folder is output_dir/name
    seed: int = 0  # weights, crops and noise seed (each rank adds its rank)
    output_dir: str = "runs"  # where runs go
    model: DFPIRConfig = field(default_factory=DFPIRConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)  # ours, off by default

    def __post_init__(self) -> None:
        check_plain_name("name", self.name)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


# ------------------------------------------------------------------ reading and merging


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with two fixes for configs: floats are resolved as YAML 1.2 does
    (``1e-3`` is a number, not the string PyYAML 1.1 makes of it) and a key repeated in one
    mapping (two ``train:`` sections) is an error instead of silently keeping the last."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, str) and key == "<<":
                    continue
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: left to PyYAML's own error
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} appears twice in one mapping (first on "
                        f"line {first.line + 1}); merge the two or delete one",
                        key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what went wrong and where (line and column, from 1)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(err, "context", None)
    return f"{problem}{where}" + (f" ({context})" if context else "")


def parse_yaml(text: str) -> Any:
    """A YAML document read with ``ConfigLoader`` (YAML 1.2 floats, no duplicate keys)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 (a SafeLoader subclass)


def _read_yaml(path: Path) -> dict:
    why = not_a_file(path)
    if why:
        raise ConfigError(f"config file {path} {why}")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text ({err.reason} at byte "
                          f"{err.start}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {yaml_problem(err)}") from None
    if data is None:
        raise ConfigError(f"config file {path} is empty; expected a mapping of config sections "
                          "(model:, data:, train:, ...) or a 'base:' to inherit")
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


def _list_index(items: list, key: str, override: str) -> int:
    """The position ``key`` names in a list (``0`` .. ``len - 1``), or a ConfigError."""
    if not key.isdigit() or int(key) >= len(items):
        raise ConfigError(f"override {override!r}: {key!r} is not an index of that list "
                          f"(expected 0..{len(items) - 1})")
    return int(key)


class FlagOverride(str):
    """An override a command's own flag stands for (``--tile 16`` is ``eval.tile=16``): errors
    name the flag, not a ``--set`` the user never typed."""

    flag: str

    def __new__(cls, override: str, flag: str) -> FlagOverride:
        made = super().__new__(cls, override)
        made.flag = flag
        return made


def apply_override(raw: dict, override: str, origin: dict[str, str]) -> None:
    """Apply ``a.b.c=value`` (value read as YAML) to a raw config mapping; a number indexes a
    list (``train.stages.0.epochs=1``)."""
    source = getattr(override, "flag", None) or f"--set {override}"
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    dotted, text = override.split("=", 1)
    keys = dotted.strip().split(".")
    try:
        value = parse_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {override!r}: the value is not valid YAML: "
                          f"{yaml_problem(err)}") from None
    node: Any = raw
    for depth, key in enumerate(keys[:-1]):
        if isinstance(node, list):  # train.stages.0.epochs: an index into a list
            node = node[_list_index(node, key, override)]
        else:
            if key not in node:  # a section this override creates: its errors name the --set
                origin[".".join(k.strip() for k in keys[:depth + 1])] = source
            node = node.setdefault(key, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {override!r}: {key} is not a section or a list")
    if isinstance(node, list):
        node[_list_index(node, keys[-1], override)] = value
    else:
        node[keys[-1]] = value
    # errors name a list entry as train.stages[0].lr: record the --set under that name
    where = ".".join(k.strip() for k in keys)
    where = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", where)
    _mark(value, where, origin, source)


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = ()
                ) -> ExperimentConfig:
    """The experiment config of a YAML file (or the defaults) with ``--set`` overrides."""
    origin: dict[str, str] = {}
    raw = load_raw(path, origin) if path is not None else {}
    for override in overrides:
        apply_override(raw, override, origin)
    return build_dataclass(ExperimentConfig, raw, "", origin)


def data_config_from_yaml(path: str | os.PathLike) -> DataConfig:
    """Read the ``data:`` section of a YAML config file (and of its ``base:`` chain) into a
    ``DataConfig``, strictly. A file without a ``data:`` key gets the defaults. Raises
    ``ConfigError`` naming the key and the file that set it.
    """
    origin: dict[str, str] = {}
    document = load_raw(path, origin)
    return data_config_from_dict(document.get("data"), origin)


def config_to_dict(cfg: Any) -> dict:
    """A plain mapping (YAML-safe) of a config dataclass."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the effective config, so a run records exactly what it ran with."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
