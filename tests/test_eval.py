"""scripts/eval.py end to end on a tiny fake dataset and a tiny checkpoint; checkpoint kinds,
config precedence and the errors a user meets."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dfpir.cli.eval import main
from dfpir.config import load_config
from dfpir.data import build_test_datasets, write_image
from dfpir.eval.metrics import compute_metrics
from dfpir.models import DFPIR
from dfpir.models.checkpoint import release_checkpoint
from dfpir.prompts import HashedEncoder, prompt_sentence
from dfpir.restore.inference import restore

TINY_MODEL = {"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1,
              "heads": [1, 2, 2, 4]}


pytestmark = pytest.mark.usefixtures("one_thread")


def make_dataset(root: Path) -> None:
    """Rain100L test layout (input/rain-N.png + target/norain-N.png) and a denoise folder,
    50x70 images (cropped to 48x64 by the protocol)."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 3):
        clean = rng.integers(0, 200, (50, 70, 3), dtype=np.uint8)
        write_image(root / "derain" / "Rain100L" / "target" / f"norain-{n}.png", clean)
        write_image(root / "derain" / "Rain100L" / "input" / f"rain-{n}.png", clean + 40)
        write_image(root / "denoise" / "bsd68" / f"img{n}.png", clean)


def write_config(tmp_path: Path, model: dict | None = None, builtin: bool = True) -> Path:
    make_dataset(tmp_path / "test")
    config = {
        "model": model or TINY_MODEL,
        "prompts": {"encoder": "hashed"},
        "data": {
            "data_root": str(tmp_path),
            "num_workers": 0,
            "test_sets": [
                {"name": "rain100l", "task": "derain", "root": "test/derain/Rain100L"},
                {"name": "cbsd68_s25", "task": "denoise_25", "root": "test/denoise/bsd68"},
            ],
            "builtin": {"enabled": builtin, "use_for_train": False, "tasks": ["derain"],
                        "test_images": ["coffee"], "test_max_side": 48},
        },
        "eval": {"device": "cpu"},
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def our_checkpoint(tmp_path: Path, config_path: Path, overrides: list[str] = ()) -> Path:
    cfg = load_config(config_path, list(overrides))
    model = DFPIR(cfg.model)
    path = tmp_path / "tiny.pt"
    torch.save({"model": model.state_dict(), "config": dataclasses.asdict(cfg)}, path)
    return path


def test_eval_end_to_end(tmp_path, capsys):
    config = write_config(tmp_path)
    ckpt = our_checkpoint(tmp_path, config)
    out = tmp_path / "results"
    status = main(["--config", str(config), "--ckpt", str(ckpt), "--out", str(out),
                   "--save-images", "--max-images", "2", "--no-progress"])
    assert status == 0, capsys.readouterr().err
    for name in ("results.md", "results.csv", "results.json", "per_image.csv"):
        assert (out / name).is_file(), name
    restored = sorted(p.relative_to(out / "images").as_posix()
                      for p in (out / "images").rglob("*.png"))
    assert restored == ["builtin_derain/coffee.png", "cbsd68_s25/img1.png", "cbsd68_s25/img2.png",
                        "rain100l/rain-1.png", "rain100l/rain-2.png"]

    data = json.loads((out / "results.json").read_text())
    assert data["model"]["dim"] == 8 and data["model_config_source"] == "checkpoint"
    assert data["checkpoint_layout"] == "ours"
    assert data["paper_table"] == "table1_three_task" and data["paper_row"] == "DFPIR"
    rain = data["sets"]["rain100l"]
    assert rain["images"] == 2 and rain["task"] == "derain"
    assert rain["paper"] == {"psnr": 38.65, "ssim": 0.982}
    assert rain["diff"]["psnr"] == pytest.approx(rain["psnr"] - 38.65, abs=1e-4)
    assert data["sets"]["builtin_derain"]["paper"] is None
    assert data["average"]["complete"] is False and data["average"]["paper"] is None

    # per-image metrics: one row per image, and each is the protocol's number for the image
    # restored with its own task's prompt
    with (out / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5
    cfg = load_config(config)
    degraded, clean, task, name = build_test_datasets(cfg.data)["rain100l"][0]
    model = DFPIR(cfg.model)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    prompt = HashedEncoder().encode([prompt_sentence("derain")])[0]
    expected = compute_metrics(restore(model.eval(), degraded, prompt), clean)
    row = next(r for r in rows if r["set"] == "rain100l" and r["image"] == name)
    assert float(row["psnr"]) == pytest.approx(expected.psnr, abs=1e-4)
    assert float(row["ssim"]) == pytest.approx(expected.ssim, abs=1e-5)
    assert degraded.shape == (3, 48, 64)  # 50x70 centre-cropped to a multiple of 16

    markdown = (out / "results.md").read_text()
    assert "Deraining Rain100L" in markdown and "DFPIR (paper)" in markdown
    assert "38.65/0.982" in markdown
    table_rows = [line for line in markdown.splitlines() if line.startswith("| DFPIR (paper)")]
    assert table_rows[0].split("|")[-3].strip() == "-"  # builtin_derain: no paper number
    with (out / "results.csv").open() as handle:
        summary = {r["set"]: r for r in csv.DictReader(handle)}
    assert set(summary) == {"rain100l", "cbsd68_s25", "builtin_derain", "average"}
    assert summary["builtin_derain"]["paper_psnr"] == ""
    assert "Deraining Rain100L" in capsys.readouterr().out


def test_model_config_from_checkpoint_and_overrides(tmp_path, capsys):
    # the YAML asks for a different architecture than the one the checkpoint stores: an error
    # naming the keys; --override-arch lets --set model.gamma replace the stored value
    config = write_config(tmp_path, model={**TINY_MODEL, "dim": 16}, builtin=False)
    ckpt = our_checkpoint(tmp_path, config, ["model.dim=8"])
    out = tmp_path / "results"
    args = ["--ckpt", str(ckpt), "--out", str(out), "--set", "model.gamma=0.7",
            "--max-images", "1", "--tile", "32", "--tile-overlap", "8", "--quantize",
            "--no-progress"]
    assert main(["--config", str(config), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "model.dim=16" in err and "model.gamma=0.7" in err and "--override-arch" in err
    assert not out.exists()
    config.write_text(config.read_text().replace("dim: 16", "dim: 8"))
    assert main(["--config", str(config), *args]) == 2
    assert "model.dim" not in capsys.readouterr().err
    assert main(["--config", str(config), *args, "--override-arch"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert (data["model"]["dim"], data["model"]["gamma"]) == (8, 0.7)
    assert data["eval"]["tile"] == 32 and data["eval"]["tile_overlap"] == 8
    assert data["eval"]["quantize"] is True
    assert not (out / "images").exists()


def test_release_checkpoints(tmp_path):
    config = write_config(tmp_path, builtin=False)
    cfg = load_config(config)
    release = tmp_path / "release_dfpir.pth"
    torch.save(release_checkpoint(DFPIR(cfg.model), epoch=80), release)
    restormer = tmp_path / "restormer.pth"
    baseline = dataclasses.replace(cfg.model, dgcpm=False, caapm=False)
    torch.save(release_checkpoint(DFPIR(baseline)), restormer)
    for path, layout, row in ((release, "dfpir_release", "DFPIR"),
                              (restormer, "restormer_release", "Restormer")):
        out = tmp_path / path.stem
        assert main(["--config", str(config), "--ckpt", str(path), "--out", str(out),
                     "--max-images", "1", "--no-progress"]) == 0
        data = json.loads((out / "results.json").read_text())
        assert data["checkpoint_layout"] == layout and data["paper_row"] == row
        assert data["model_config_source"] == "config"
    data = json.loads((tmp_path / "restormer" / "results.json").read_text())
    assert not data["model"]["dgcpm"] and not data["model"]["caapm"]
    assert data["sets"]["rain100l"]["paper"]["psnr"] == 36.55  # the paper's Restormer


def test_clear_errors(tmp_path, capsys):
    config = write_config(tmp_path, builtin=False)
    args = ["--config", str(config), "--out", str(tmp_path / "r"), "--no-progress", "--ckpt"]
    assert main([*args, str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    assert main([*args, str(corrupt)]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    bigger = tmp_path / "bigger.pt"
    torch.save({"model": DFPIR(load_config(config, ["model.dim=16"]).model).state_dict()}, bigger)
    assert main([*args, str(bigger)]) == 2
    assert "does not fit the model" in capsys.readouterr().err
    ckpt = our_checkpoint(tmp_path, config)
    assert main([*args, str(ckpt), "--paper-row", "Nope"]) == 2
    assert "has no row 'Nope'" in capsys.readouterr().err
    assert main([*args, str(ckpt), "--set", "model.gama=0.7"]) == 2
    assert "did you mean 'gamma'" in capsys.readouterr().err
    assert main([*args, str(ckpt), "--set", "data.data_root=/nonexistent"]) == 2
    assert "not found" in capsys.readouterr().err
