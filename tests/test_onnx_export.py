"""Per-task export: the prompt folded into the DGCPM weights gives the model's own output; the
ONNX graph (reflect padding inside) matches PyTorch in onnxruntime at any size; the runner
restores files without torch model code; bad input ends in one error line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from dfpir.cli.export import main as export_main
from dfpir.cli.restore import main as restore_main
from dfpir.config import ExperimentConfig
from dfpir.data import read_image_raw, write_image
from dfpir.models import DFPIR
from dfpir.prompts import HashedEncoder, prompt_sentence
from dfpir.restore.inference import restore
from dfpir.restore.onnx_export import TaskModel, fold_prompt, load_task_model

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def save_tiny(path: Path, **overrides) -> Path:
    cfg = ExperimentConfig(model=tiny_config(**overrides))
    cfg.prompts.encoder = "hashed"
    torch.save({"model": DFPIR(cfg.model).state_dict(), "config": dataclasses.asdict(cfg)}, path)
    return path


def derain_prompt() -> torch.Tensor:
    return HashedEncoder().encode([prompt_sentence("derain")])[0]


@pytest.mark.parametrize("overrides", [{}, {"learnable_dgm": True}, {"caapm": False}])
def test_folded_model_equals_prompted_model(overrides):
    model = DFPIR(tiny_config(**overrides)).eval()
    prompt = derain_prompt()
    task = TaskModel(fold_prompt(model, prompt)).eval()
    assert not any("dgm" in k.split(".")[-3:-1] for k in task.state_dict())
    with torch.no_grad():
        for size in [(32, 32), (37, 53), (21, 16)]:
            x = torch.rand(2, 3, *size)
            assert (task(x) - model(x, prompt)).abs().max() < 1e-5
    # a different prompt gives a different folded network
    other = TaskModel(fold_prompt(model, HashedEncoder().encode(["Lowlight degradation"])[0]))
    with torch.no_grad():
        x = torch.rand(1, 3, 24, 24)
        assert (other(x) - task(x)).abs().max() > 1e-4


def test_safetensors_export_round_trip(tmp_path, capsys):
    ckpt = save_tiny(tmp_path / "tiny.pt")
    out = tmp_path / "derain.safetensors"
    assert export_main(["--ckpt", str(ckpt), "--task", "derain", "--safetensors", str(out)]) == 0
    task = load_task_model(out)
    assert task.metadata["task"] == "derain"
    assert task.metadata["sentence"] == prompt_sentence("derain")
    assert task.metadata["prompt_encoder"] == "hashed"
    assert task.metadata["source_checkpoint"] == str(ckpt)
    model = DFPIR(tiny_config())
    model.load_state_dict(torch.load(ckpt)["model"])
    x = torch.rand(1, 3, 29, 40)
    with torch.no_grad():
        assert (task(x) - model.eval()(x, derain_prompt())).abs().max() < 1e-5


def test_export_errors_create_nothing(tmp_path, capsys):
    ckpt = save_tiny(tmp_path / "tiny.pt")
    out = tmp_path / "x.safetensors"
    assert export_main(["--ckpt", str(ckpt), "--task", "desnow", "--safetensors", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown degradation 'desnow'")
    assert export_main(["--ckpt", str(ckpt), "--safetensors", str(out)]) == 2
    assert "--task" in capsys.readouterr().err
    assert export_main(["--ckpt", str(tmp_path / "none.pt"), "--task", "derain",
                        "--safetensors", str(out)]) == 2
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]


# ------------------------------------------------------------------ ONNX (the [onnx] extra)


@pytest.fixture(scope="module")
def exported(onnx_export) -> tuple[Path, Path]:
    """One tiny checkpoint exported for derain through ``dfpir export`` (exporting takes tens
    of seconds, so the ONNX tests share it; conftest starts it in the background)."""
    return onnx_export


def reference_model(ckpt: Path) -> DFPIR:
    model = DFPIR(tiny_config())
    model.load_state_dict(torch.load(ckpt)["model"])
    return model.eval()


def test_onnx_matches_pytorch_at_any_size(exported):
    from dfpir.restore.onnx_runtime import OnnxRestorer

    ckpt, onnx_path = exported
    runner = OnnxRestorer(onnx_path, threads=1)
    meta = runner.metadata
    assert (runner.task, runner.sentence) == ("derain", prompt_sentence("derain"))
    assert meta["prompt_encoder"] == "hashed" and meta["source_checkpoint"] == str(ckpt)
    assert json.loads(meta["model_config"])["dim"] == 8
    model, prompt = reference_model(ckpt), derain_prompt()
    for size in [(32, 48), (37, 53), (64, 21)]:  # 37x53 and 64x21: padded inside the graph
        x = torch.rand(2, 3, *size)
        with torch.no_grad():
            expected = model(x, prompt).numpy()
        got = runner.run(x.numpy())
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4
    assert runner.run(np.random.rand(1, 3, 4, 6).astype(np.float32)).shape == (1, 3, 4, 6)


def test_onnx_tiles_like_pytorch(exported):
    from dfpir.restore.onnx_runtime import OnnxRestorer

    ckpt, onnx_path = exported
    rgb = np.random.default_rng(0).random((70, 90, 3), dtype=np.float32)
    calls = []
    got = OnnxRestorer(onnx_path, threads=1).restore(rgb, tile=32, overlap=8,
                                                     progress=lambda d, t: calls.append((d, t)))
    expected = restore(reference_model(ckpt), torch.from_numpy(rgb.transpose(2, 0, 1).copy()),
                       derain_prompt(), tile=32, overlap=8).numpy().transpose(1, 2, 0)
    assert np.abs(got - expected).max() <= 1e-4
    assert calls[-1] == (12, 12)  # 3 rows x 4 columns of 32-pixel tiles


def test_restore_script_runs_onnx(exported, tmp_path, capsys):
    _, onnx_path = exported
    write_image(tmp_path / "in" / "rgba16.png",
                np.random.default_rng(1).integers(0, 65536, (19, 30, 4), dtype=np.uint16))
    write_image(tmp_path / "in" / "grey.png", np.zeros((12, 17), dtype=np.uint8))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n")
    code = restore_main(["--onnx", str(onnx_path), "-i", str(tmp_path / "in"), "-o",
                         str(tmp_path / "out"), "--no-progress"])
    assert code == 1  # the broken file failed, the others were restored
    rgba = read_image_raw(tmp_path / "out" / "rgba16.png")
    assert rgba.shape == (19, 30, 4) and rgba.dtype == np.uint16
    assert read_image_raw(tmp_path / "out" / "grey.png").shape == (12, 17)
    assert "broken.png" in capsys.readouterr().err
    code = restore_main(["--onnx", str(onnx_path), "-i", str(tmp_path / "in" / "grey.png"),
                         "-o", str(tmp_path / "x.png"), "-d", "dehaze"])
    assert code == 2 and "exported for 'derain'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_onnx_runner_rejects_other_files(tmp_path):
    from dfpir.restore.onnx_runtime import OnnxModelError, OnnxRestorer

    pytest.importorskip("onnxruntime")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(OnnxModelError, match="cannot load"):
        OnnxRestorer(bad)
    with pytest.raises(OnnxModelError, match="does not exist"):
        OnnxRestorer(tmp_path / "none.onnx")


def test_app_bundle_runs_onnx(exported, tmp_path):
    from dfpir.app.server import degradation_choices, load_bundle, restore_uploads

    _, onnx_path = exported
    bundle = load_bundle(onnx=onnx_path, tile=32, overlap=8, threads=1)
    assert degradation_choices(bundle) == ["derain"]
    write_image(tmp_path / "a.png", np.random.default_rng(2).integers(0, 256, (40, 50, 3),
                                                                      dtype=np.uint8))
    results, written, messages = restore_uploads(bundle, [tmp_path / "a.png"], "derain",
                                                 tmp_path / "out")
    assert read_image_raw(written[0]).shape == (40, 50, 3) and "restored" in messages[0]
