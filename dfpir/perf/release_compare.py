"""Time and check our DFPIR against the authors' release model, in one process, on the CPU.

The release's code is not part of this package: give the folder of a local clone of
TxpHome/DFPIR (the one holding ``net/model.py``). Its model is built with random weights
copied from ours (``ours_to_release``), the two outputs are compared, then the two models are
timed in turn (release, ours, release, ours, ...), so both see the same machine state.
"""

from __future__ import annotations

import importlib
import importlib.util
import statistics
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..models import DFPIRConfig, build_model
from ..models.checkpoint import ours_to_release

RELEASE_CLASS = "ChannelShuffle_skip_textguaid"


def _stub_module(name: str, **attrs: object) -> None:
    """Install an empty module ``name`` unless the real one is importable: the release imports
    ``clip`` and ``huggingface_hub`` at the top of ``net/model.py`` but the network needs neither."""
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def _clip_missing(*_: object, **__: object) -> None:
    raise RuntimeError("the release's CLIP is not needed (and not installed) for this comparison")


def load_release_class(release_dir: str | Path) -> type[nn.Module]:
    """The release's ``ChannelShuffle_skip_textguaid`` class from a clone at ``release_dir``."""
    root = Path(release_dir)
    model_file = root / "net" / "model.py"
    if not model_file.is_file():
        raise ConfigError(f"--release-dir {str(root)!r} has no net/model.py; expected a clone of "
                          "https://github.com/TxpHome/DFPIR")
    _stub_module("clip", load=_clip_missing, tokenize=_clip_missing)
    _stub_module("huggingface_hub", PyTorchModelHubMixin=type("PyTorchModelHubMixin", (), {}))
    for name in [n for n in sys.modules if n == "net" or n.startswith("net.")]:
        del sys.modules[name]  # another clone's (or any other) ``net`` package imported before
    sys.path.insert(0, str(root.resolve()))
    try:
        module = importlib.import_module("net.model")
    except Exception as err:  # the release's own imports (einops, torchvision, ...)
        raise ConfigError(f"could not import {model_file}: {type(err).__name__}: {err}") from err
    finally:
        sys.path.remove(str(root.resolve()))
    if not hasattr(module, RELEASE_CLASS):
        raise ConfigError(f"{model_file} defines no {RELEASE_CLASS}; expected the release's model")
    return getattr(module, RELEASE_CLASS)


@dataclass
class Comparison:
    """Seconds per forward of each model, in the order run, and their largest output difference."""

    shape: tuple[int, int, int, int]
    threads: int
    max_diff: float
    release_s: list[float] = field(default_factory=list)
    ours_s: list[float] = field(default_factory=list)
    release_cpu_s: list[float] = field(default_factory=list)
    ours_cpu_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Release / ours, medians of the wall times."""
        return statistics.median(self.release_s) / statistics.median(self.ours_s)

    @property
    def pair_ratio(self) -> float:
        """Median of release / ours over the interleaved pairs."""
        return statistics.median(r / o for r, o in zip(self.release_s, self.ours_s, strict=True))

    @property
    def cpu_ratio(self) -> float:
        """Release / ours, medians of the process CPU times."""
        return statistics.median(self.release_cpu_s) / statistics.median(self.ours_cpu_s)

    def summary(self) -> str:
        b, c, h, w = self.shape
        med = statistics.median
        return (f"{b}x{c}x{h}x{w}, fp32, {self.threads} threads, median of {len(self.ours_s)}: "
                f"release {med(self.release_s):.3f} s, ours {med(self.ours_s):.3f} s, "
                f"release/ours {self.ratio:.2f}x (per pair {self.pair_ratio:.2f}x, CPU time "
                f"{self.cpu_ratio:.2f}x); largest output difference {self.max_diff:.2e}")


def _timed(model: nn.Module, x: torch.Tensor, prompt: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        out = model(x, prompt)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def check_settings(shape: tuple[int, int, int, int], runs: int, threads: int) -> None:
    """The comparison's settings, checked before any model is loaded or built."""
    batch, _, height, width = shape
    for flag, value in (("--size", min(height, width)), ("--batch", batch), ("--runs", runs),
                        ("--threads", threads)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")


def compare_with_release(
    release_cls: type[nn.Module],
    shape: tuple[int, int, int, int] = (2, 3, 128, 128),
    runs: int = 5,
    threads: int = 2,
    seed: int = 0,
    config: DFPIRConfig | None = None,
    progress: bool = True,
) -> Comparison:
    """Build both models with the same random weights, compare one forward, then time ``runs``
    interleaved forwards of each (after one untimed forward each)."""
    check_settings(shape, runs, threads)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    ours = build_model(config).eval()
    release = release_cls(device="cpu").eval()
    _, unexpected = release.load_state_dict(ours_to_release(ours.state_dict()), strict=False)
    if unexpected:
        raise ConfigError(f"the release model has no parameters named {sorted(unexpected)[:4]}; "
                          "is --release-dir a clone of TxpHome/DFPIR?")
    x = torch.rand(*shape)
    prompt = torch.randn(shape[0], ours.config.prompt_dim)
    expected, _, _ = _timed(release, x, prompt)
    got, _, _ = _timed(ours, x, prompt)
    result = Comparison(tuple(shape), threads, float((expected - got).abs().max()))
    for i in range(runs):
        for model, wall_s, cpu_s in ((release, result.release_s, result.release_cpu_s),
                                     (ours, result.ours_s, result.ours_cpu_s)):
            _, wall, cpu = _timed(model, x, prompt)
            wall_s.append(wall)
            cpu_s.append(cpu)
        if progress:
            print(f"run {i + 1}/{runs}: release {result.release_s[-1]:.3f} s, ours "
                  f"{result.ours_s[-1]:.3f} s", flush=True)
    return result
