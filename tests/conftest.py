"""Shared fixtures: tiny model configurations that run in milliseconds on a CPU."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from dfpir.models import DFPIRConfig


def tiny_config(**overrides) -> DFPIRConfig:
    """dim 8, one block per level: every code path of the full model, a thousandth of the cost."""
    base = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 2, 4])
    base.update(overrides)
    return DFPIRConfig(**base)


def always_classifier(label: str, classes: list[str]):
    """A blind degradation classifier whose every answer is ``label`` (p ~ 1): its last layer
    is a bias."""
    from dfpir.blind import ClassifierConfig, DegradationClassifier

    clf = DegradationClassifier(classes, ClassifierConfig())
    last = clf.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-20.0)
        last.bias[classes.index(label)] = 20.0
    return clf.eval()


@pytest.fixture
def tiny() -> DFPIRConfig:
    return tiny_config()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: tiny models run faster and steadier so on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ the shared ONNX export
# Exporting even the tiny model to ONNX takes tens of seconds (torch.export's tracing), so
# the suite starts that export in a background process when it starts, and the ONNX tests
# (tests/test_onnx_export.py, fixture ``exported``) wait for it: it runs beside the others.

ONNX_EXPORT_SCRIPT = """
import dataclasses, sys
import torch
sys.path.insert(0, {tests!r})
from conftest import tiny_config
from dfpir.cli.export import main
from dfpir.config import ExperimentConfig
from dfpir.models import DFPIR

torch.set_num_threads(1)
torch.manual_seed(0)
cfg = ExperimentConfig(model=tiny_config())
cfg.prompts.encoder = "hashed"
torch.save({{"model": DFPIR(cfg.model).state_dict(), "config": dataclasses.asdict(cfg)}},
           {ckpt!r})
sys.exit(main(["--ckpt", {ckpt!r}, "--task", "derain", "--onnx", {onnx!r}]))
"""

_onnx_job: dict = {}


def pytest_sessionstart(session) -> None:
    import importlib.util
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    if any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime", "onnxscript")):
        return
    folder = Path(tempfile.mkdtemp(prefix="dfpir_onnx_"))
    ckpt, onnx = folder / "tiny.pt", folder / "derain.onnx"
    code = ONNX_EXPORT_SCRIPT.format(tests=str(Path(__file__).parent), ckpt=str(ckpt),
                                     onnx=str(onnx))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _onnx_job.update(folder=folder, ckpt=ckpt, onnx=onnx, process=subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env, cwd=str(Path(__file__).parents[1])))


def pytest_sessionfinish(session, exitstatus) -> None:
    import shutil

    process = _onnx_job.get("process")
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
    if "folder" in _onnx_job:
        shutil.rmtree(_onnx_job["folder"], ignore_errors=True)


@pytest.fixture(scope="session")
def onnx_export():
    """(tiny checkpoint, its derain ONNX export), made by ``dfpir export --task derain
    --onnx`` in the background process started with the session."""
    process = _onnx_job.get("process")
    if process is None:
        pytest.skip("the onnx extra is not installed")
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output.decode(errors="replace")
    return _onnx_job["ckpt"], _onnx_job["onnx"]
