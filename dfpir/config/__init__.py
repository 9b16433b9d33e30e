"""Experiment configs: the ``ExperimentConfig`` dataclass and its sections, YAML reading with
``base:`` inheritance and ``--set`` overrides, strict checking (``dfpir.schema``).

The sections of the other packages (``DFPIRConfig`` in ``dfpir.models``, ``DataConfig`` in
``dfpir.data``, ``PromptConfig`` in ``dfpir.prompts``) are composed here with the training,
evaluation and classifier sections.
"""

from .classifier import CLEAN, IF_UNSURE, ClassifierConfig
from .experiment import (
    ConfigError,
    EvalConfig,
    ExperimentConfig,
    FlagOverride,
    apply_override,
    build_dataclass,
    config_to_dict,
    convert,
    data_config_from_yaml,
    load_config,
    load_raw,
    parse_yaml,
    save_config,
)
from .train import (
    Amp,
    Loss,
    LossWeighting,
    Scheduler,
    SchedulerStep,
    StageConfig,
    TrainConfig,
    check_device_name,
)

__all__ = [
    "CLEAN",
    "IF_UNSURE",
    "Amp",
    "ClassifierConfig",
    "ConfigError",
    "EvalConfig",
    "ExperimentConfig",
    "FlagOverride",
    "Loss",
    "LossWeighting",
    "Scheduler",
    "SchedulerStep",
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
    "parse_yaml",
    "save_config",
]
