"""Issue 22, class 1: results never share a file; the count printed is the files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from test_app import save_tiny

from dfpir.app.server import load_bundle, restore_uploads
from dfpir.cli.restore import main as restore_main
from dfpir.config import ExperimentConfig
from dfpir.data import write_image
from dfpir.models import DFPIR
from dfpir.restore import output_paths, unique_path

pytestmark = pytest.mark.usefixtures("one_thread")


def test_colliding_stems_and_side_by_side_names_stay_unique(tmp_path):
    inputs = [Path(n) for n in ("a.jpg", "a.png", "a_jpg.png", "b_side_by_side.png", "b.png")]
    plain = output_paths(inputs, tmp_path, single_file=False)
    assert len({p.name.lower() for p in plain}) == len(inputs)
    both = output_paths(inputs, tmp_path, single_file=False, compare=True)
    names = [p.name for p in both] + [f"{p.stem}_side_by_side.png" for p in both]
    assert len({n.lower() for n in names}) == 2 * len(inputs), names


def test_unique_path_folds_case():
    taken: set[Path] = set()
    assert unique_path(Path("x/A.png"), taken) == Path("x/A.png")
    assert unique_path(Path("x/a.png"), taken) == Path("x/a_2.png")


def test_restore_writes_one_file_per_colliding_input(tmp_path, capsys):
    cfg = ExperimentConfig(model=tiny_config())
    ckpt = tmp_path / "tiny.pt"
    torch.save({"model": DFPIR(cfg.model).state_dict(),
                "config": {"model": cfg.model.__dict__ | {}}}, ckpt)
    folder = tmp_path / "in"
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "a.png", "a_jpg.png", "c.png", "c_side_by_side.png"):
        write_image(folder / name, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    out = tmp_path / "out"
    code = restore_main(["--ckpt", str(ckpt), "-i", str(folder), "-o", str(out), "-d",
                         "derain", "--side-by-side", "--no-progress", "--set",
                         "prompts.encoder=hashed", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 2 * 5, written  # five results, five previews, none overwritten
    assert "restored 5 of 5" in capsys.readouterr().out


def test_app_same_stem_uploads_get_two_files(tmp_path):
    bundle = load_bundle(save_tiny(tmp_path / "tiny.pt"), device="cpu", tile=0, overlap=0)
    pixels = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    uploads = [tmp_path / "same.jpg", tmp_path / "same.png"]
    for path in uploads:
        write_image(path, pixels)
    _, written, _ = restore_uploads(bundle, uploads, "derain", tmp_path / "out")
    assert len(written) == 2 and len(set(written)) == 2
    assert all(p.is_file() for p in written)
