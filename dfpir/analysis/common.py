"""What every analysis figure needs: a checkpoint loaded with its config and prompts, forward
hooks that record intermediate features, and small helpers to write PNG and CSV files."""

from __future__ import annotations

import contextlib
import csv
import difflib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import ExperimentConfig
from ..data import build_test_datasets
from ..device import resolve_device
from ..loading import experiment_config, load_experiment
from ..models import DFPIR
from ..prompts import DEGRADATIONS, PromptBank, PromptEncoder, build_encoder


def resolve_config(checkpoint: Mapping, config: str | os.PathLike | None = None,
                   overrides: Sequence[str] = (), override_arch: bool = False
                   ) -> ExperimentConfig:
    """The experiment config of an analysis run, by the one rule of ``dfpir.loading``: the
    YAML file when given, else the config the checkpoint was trained with (ours store it),
    else the defaults; ``overrides`` on top. A YAML or ``--set`` whose model keys disagree with
    the architecture stored in the checkpoint is a ``ConfigError`` naming the keys, unless
    ``override_arch``."""
    return experiment_config(checkpoint, config, overrides, override_arch=override_arch)[0]


def default_tasks(cfg: ExperimentConfig) -> list[str]:
    """The degradations a config knows (training tasks, test sets, built-in tasks), in the
    registry's order; the prompts the shuffle figure draws by default."""
    data = cfg.data
    tasks = {t.task for t in data.train_tasks} | {t.task for t in data.test_sets}
    if data.builtin.enabled:
        tasks |= set(data.builtin.tasks)
    return sorted(tasks, key=list(DEGRADATIONS).index)


class Analysis:
    """A model loaded from a checkpoint, with its config, device, prompts and test sets.

    Built by ``load_analysis``; every figure function takes one, so a script draws several
    figures from one load.
    """

    def __init__(self, model: DFPIR, cfg: ExperimentConfig, device: torch.device,
                 layout: str = "ours", source: str = "") -> None:
        self.model = model.to(device).eval()
        self.cfg = cfg
        self.device = device
        self.layout = layout
        self.source = source
        self._encoder: PromptEncoder | None = None
        self._embeddings: dict[str, torch.Tensor] = {}
        self._test_sets: dict[str, Dataset] | None = None

    @property
    def has_prompts(self) -> bool:
        """False for the Restormer baseline (no DGPB, no prompt)."""
        return bool(self.model.config.has_dgpb)

    def prompts(self, tasks: Sequence[str]) -> torch.Tensor | None:
        """(len(tasks), prompt_dim) embeddings on the device, ``None`` for the baseline.
        The encoder is built on first use, so the baseline never needs CLIP."""
        if not self.has_prompts:
            return None
        missing = [t for t in dict.fromkeys(tasks) if t not in self._embeddings]
        if missing:
            if self._encoder is None:
                self._encoder = build_encoder(self.cfg.prompts, self.device)
            bank = PromptBank(self._encoder, missing, self.cfg.prompts.style)
            self._embeddings.update(zip(missing, bank.embeddings.float(), strict=True))
        return torch.stack([self._embeddings[t] for t in tasks]).to(self.device)

    def test_sets(self) -> dict[str, Dataset]:
        """The config's test sets (built once)."""
        if self._test_sets is None:
            self._test_sets = build_test_datasets(self.cfg.data)
        return self._test_sets


def load_analysis(checkpoint: str | os.PathLike, config: str | os.PathLike | None = None,
                  overrides: Sequence[str] = (), device: str | torch.device = "auto",
                  override_arch: bool = False) -> Analysis:
    """Load a checkpoint (ours, or a release one with ``config``) for drawing figures, through
    ``dfpir.loading.load_experiment`` (the one checkpoint-to-model path)."""
    loaded = load_experiment(checkpoint, config, overrides, device, override_arch=override_arch)
    return Analysis(loaded.model, loaded.cfg, resolve_device(device), loaded.layout,
                    str(checkpoint))


# ------------------------------------------------------------------ forward hooks


def get_module(model: nn.Module, name: str) -> nn.Module:
    """``model.get_submodule(name)`` with an error that suggests the nearest module names."""
    try:
        module = model.get_submodule(name)
    except AttributeError:
        module = None
    if module is None or not name:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(name, names, n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"the model has no module {name!r}{hint} (see model.named_modules(); "
                         "e.g. dgpb_latent, latent, encoder_level2, dgpb_level1.caapm)")
    return module


def _first_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise TypeError(f"expected a tensor, got {type(value).__name__}")


class StopForward(Exception):
    """Raised by a ``record(..., stop=True)`` hook to end a forward pass early."""


@contextlib.contextmanager
def record(model: nn.Module, outputs: Sequence[str] = (), inputs: Sequence[str] = (),
           stop: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks that keep the output of the modules ``outputs`` (key: the name) and the
    first input of the modules ``inputs`` (key: ``name + ":input"``), detached, from the last
    call of each module. Features are read off the real forward pass, not re-computed.

    ``stop=True`` (one name in ``outputs``): the hook raises ``StopForward`` once it has the
    feature, so the rest of the network (the costly full-resolution decoder, for a latent
    feature) is skipped; call the model through ``forward_until``."""
    store: dict[str, torch.Tensor] = {}
    handles = []
    if stop and (len(outputs) != 1 or inputs):
        raise ValueError("record(stop=True) takes exactly one name in outputs")

    def keep(key: str, use_input: bool):
        def hook(_module: nn.Module, args: tuple, output: Any) -> None:
            store[key] = _first_tensor(args if use_input else output).detach()
            if stop:
                raise StopForward(key)
        return hook

    try:
        for name in outputs:
            handles.append(get_module(model, name).register_forward_hook(keep(name, False)))
        for name in inputs:
            handles.append(
                get_module(model, name).register_forward_hook(keep(f"{name}:input", True)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def forward_until(model: nn.Module, *args: Any) -> None:
    """Call ``model(*args)`` and swallow the ``StopForward`` of a ``record(stop=True)`` hook."""
    with contextlib.suppress(StopForward):
        model(*args)


# ------------------------------------------------------------------ output helpers


def new_figure(width: float, height: float):
    """A matplotlib figure drawn by the Agg backend, without touching pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a figure as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write dict rows as CSV (columns of the first row); floats with 6 significant digits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        if not rows:
            return path
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, (float, np.floating)) else v)
                             for k, v in row.items()})
    return path


def image_hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) tensor -> HxWx3 float array in [0, 1] for imshow."""
    if image.dim() == 4:
        image = image[0]
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
