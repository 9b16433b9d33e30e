"""scripts/restore.py: a file or a folder in, restored images out, in the input's format; bad
images are reported without stopping the rest; clear errors for names and checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image

from dfpir.cli.restore import main
from dfpir.config import ExperimentConfig
from dfpir.data import read_image_raw, write_image
from dfpir.data.tasks import TASKS
from dfpir.models import DFPIR
from dfpir.models.checkpoint import release_checkpoint
from dfpir.restore import finish_image, prepare_image

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """A tiny checkpoint of ours whose stored config selects the hashed prompt encoder."""
    cfg = ExperimentConfig(model=tiny_config())
    cfg.prompts.encoder = "hashed"
    path = tmp_path / "tiny.pt"
    torch.save({"model": DFPIR(cfg.model).state_dict(), "config": dataclasses.asdict(cfg)}, path)
    return path


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_folder_with_every_format_and_a_broken_file(tmp_path, ckpt, capsys):
    folder = tmp_path / "in"
    write_image(folder / "rgb.png", photo(37, 53))  # odd size: restored at the same size
    write_image(folder / "gray.png", photo(24, 40)[:, :, 0])
    rgba = np.concatenate([photo(24, 32, 1), photo(24, 32, 2)[:, :, :1]], axis=2)
    write_image(folder / "rgba.png", rgba)
    deep = (np.random.default_rng(3).integers(0, 65536, (24, 32, 3))).astype(np.uint16)
    write_image(folder / "deep.png", deep)
    write_image(folder / "photo.jpg", photo(24, 32, 4))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "notes.txt").write_text("not an image: ignored")
    out = tmp_path / "out"

    status = main(["--ckpt", str(ckpt), "--input", str(folder), "--out", str(out),
                   "--degradation", "derain", "--side-by-side", "--device", "cpu",
                   "--no-progress"])
    captured = capsys.readouterr()
    assert status == 1  # one image failed ...
    assert "broken.png" in captured.err and "1 failed" in captured.err
    assert "restored 5 of 6" in captured.out  # ... and the five others were restored
    assert sorted(p.name for p in out.glob("*.png") if "side_by_side" not in p.name) == [
        "deep.png", "gray.png", "photo.png", "rgb.png", "rgba.png"]

    assert read_image_raw(out / "rgb.png").shape == (37, 53, 3)
    gray = read_image_raw(out / "gray.png")
    assert gray.shape == (24, 40) and gray.dtype == np.uint8
    restored_rgba = read_image_raw(out / "rgba.png")
    assert restored_rgba.shape == (24, 32, 4)
    assert np.array_equal(restored_rgba[:, :, 3], rgba[:, :, 3])  # alpha kept as it was
    restored_deep = read_image_raw(out / "deep.png")
    assert restored_deep.dtype == np.uint16 and restored_deep.shape == (24, 32, 3)
    assert len(np.unique(restored_deep)) > 256  # really 16-bit, not 8-bit scaled up
    preview = read_image_raw(out / "rgb_side_by_side.png")
    assert preview.shape == (37, 2 * 53 + 8, 3)


def test_single_file_with_free_prompt_and_output_file(tmp_path, ckpt):
    source = tmp_path / "hazy.png"
    write_image(source, photo(20, 30))
    target = tmp_path / "result.png"
    assert main(["--ckpt", str(ckpt), "--input", str(source), "--out", str(target),
                 "--prompt", "Hazy degradation with normal haze", "--tile", "16",
                 "--tile-overlap", "4", "--no-progress"]) == 0
    assert read_image_raw(target).shape == (20, 30, 3)


def test_errors(tmp_path, ckpt, capsys):
    source = tmp_path / "x.png"
    write_image(source, photo(16, 16))
    args = ["--input", str(source), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main([*args, "--ckpt", str(ckpt), "--degradation", "derainn"]) == 2
    err = capsys.readouterr().err
    assert "unknown degradation 'derainn'" in err
    for name in TASKS:
        assert name in err
    assert main([*args, "--ckpt", str(ckpt)]) == 2
    assert "needs a prompt" in capsys.readouterr().err
    assert main([*args, "--ckpt", str(tmp_path / "nope.pt"), "-d", "derain"]) == 2
    assert "does not exist" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00" * 64)
    assert main([*args, "--ckpt", str(corrupt), "-d", "derain"]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    before = source.read_bytes()  # into the input's own folder: a new name, never the input
    assert main(["--input", str(tmp_path), "--out", str(tmp_path), "--ckpt", str(ckpt),
                 "-d", "derain", "--no-progress"]) == 0
    assert source.read_bytes() == before and (tmp_path / "x_2.png").is_file()
    assert main(["--input", str(source), "--out", str(source), "--ckpt", str(ckpt),
                 "-d", "derain", "--overwrite"]) == 2
    assert "is the input itself" in capsys.readouterr().err and source.read_bytes() == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--input", str(empty), "--ckpt", str(ckpt), "-d", "derain"]) == 2
    assert "no image files" in capsys.readouterr().err
    Image.new("RGB", (8, 8)).save(empty / "still.gif")  # only files it skips: it says why
    assert main(["--input", str(empty), "--ckpt", str(ckpt), "-d", "derain"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no image files to restore" in err
    assert "GIF: give one as --input to restore it" in err and "still.gif" in err


def test_restormer_release_checkpoint_needs_no_prompt(tmp_path):
    path = tmp_path / "restormer.pth"
    torch.save(release_checkpoint(DFPIR(tiny_config(dgcpm=False, caapm=False))), path)
    source = tmp_path / "x.png"
    write_image(source, photo(16, 24))
    # no --config and no stored config: the architecture comes from the defaults and --set
    overrides = ["--set", "model.dim=8", "--set", "model.num_blocks=[1,1,1,1]",
                 "--set", "model.num_refinement_blocks=1", "--set", "model.heads=[1,2,2,4]"]
    assert main(["--ckpt", str(path), "--input", str(source), "--out", str(tmp_path / "o"),
                 *overrides, "--no-progress"]) == 0
    assert (tmp_path / "o" / "x.png").is_file()


def test_format_round_trip():
    """prepare + finish with the identity 'restoration' gives the input back, in every
    format."""
    rng = np.random.default_rng(0)
    cases = [
        rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
        rng.integers(0, 256, (5, 7), dtype=np.uint8),
        rng.integers(0, 256, (5, 7, 2), dtype=np.uint8),
        rng.integers(0, 256, (5, 7, 4), dtype=np.uint8),
        rng.integers(0, 65536, (5, 7, 3)).astype(np.uint16),
        rng.integers(0, 65536, (5, 7, 4)).astype(np.uint16),
    ]
    for array in cases:
        prepared = prepare_image(array)
        assert prepared.rgb.shape == (5, 7, 3) and prepared.rgb.dtype == np.float32
        back = finish_image(prepared.rgb, prepared)
        assert back.dtype == array.dtype and np.array_equal(back, array), array.shape
    assert prepare_image(cases[4]).notes and prepare_image(cases[1]).grayscale


def test_other_files_and_animations_are_named_not_passed_over(tmp_path, caplog):
    from PIL import Image

    from dfpir.restore import collect_inputs

    frames = [Image.new("RGB", (20, 20), (40 * i, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    write_image(tmp_path / "photo.png", photo(16, 16))
    with caplog.at_level("INFO", logger="dfpir"):
        assert collect_inputs(tmp_path) == [tmp_path / "photo.png"]
        assert collect_inputs(tmp_path / "anim.gif") == [tmp_path / "anim.gif"]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "1 file(s) of" in said and "anim.gif" in said
    assert "has 3 frames (an animation): only the first is restored" in said


def test_a_fifo_or_folder_is_not_called_missing(tmp_path):
    import os

    from dfpir.data import DataError
    from dfpir.models.checkpoint import CheckpointError, read_checkpoint
    from dfpir.restore import collect_inputs

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="is not a regular file \\(a FIFO\\)"):
        collect_inputs(fifo)
    with pytest.raises(CheckpointError, match="is a folder, not a file"):
        read_checkpoint(tmp_path)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty \\(0 bytes\\)"):
        read_checkpoint(empty)


def test_what_is_changed_skipped_or_ignored_is_said(tmp_path, ckpt, capsys, caplog):
    """Palette and CMYK files, hidden images, a GIF in a folder, options this way of restoring
    does not use: each gets a note; a tile under the default overlap names that default."""
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("P", (16, 16)).save(folder / "pal.png")
    Image.new("CMYK", (16, 16), (10, 20, 30, 40)).save(folder / "print.jpg")
    write_image(folder / ".hidden.png", photo(16, 16))
    Image.new("RGB", (16, 16)).save(folder / "still.gif")
    base = ["--ckpt", str(ckpt), "-d", "derain", "--no-progress"]
    with caplog.at_level("INFO", logger="dfpir"):
        assert main([*base, "-i", str(folder), "-o", str(tmp_path / "o"), "--threads", "2",
                     "--classifier", "c.pt", "--tile-overlap", "8"]) == 0
    said = caplog.text
    for note in ("pal.png: palette image read as RGB", "print.jpg: CMYK image read as RGB",
                 "1 hidden image(s)", ".hidden.png", "GIF: give one as --input",
                 "--threads applies to --onnx", "--classifier applies to --degradation auto",
                 "--tile-overlap applies with --tile"):
        assert note in said, note
    capsys.readouterr()
    assert main([*base, "-i", str(folder / "pal.png"), "-o", str(tmp_path / "t.png"),
                 "--tile", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the tile overlap 32 (the default, eval.tile_overlap" in err
    assert not (tmp_path / "t.png").exists()
    (tmp_path / "nested" / "sub").mkdir(parents=True)
    assert main([*base, "-i", str(tmp_path / "nested"), "-o", str(tmp_path / "o2")]) == 2
    assert "its sub-folders are not searched" in capsys.readouterr().err
    assert main([*base[:2], "-d", "derian", "-i", str(folder), "-o", str(tmp_path / "o3")]) == 2
    assert "lowlight, or auto" in capsys.readouterr().err


def test_a_refused_out_comes_alone_without_the_folders_notes(tmp_path, ckpt, capsys, caplog):
    """Notes on the inputs and their result names wait until the output place is checked: a
    refusal stays one line."""
    folder = tmp_path / "in"
    for name in ("a.jpg", "a.png"):  # results named apart: a_jpg.png, a_png.png
        write_image(folder / name, photo(16, 16))
    (folder / "notes.txt").write_text("mine")
    (tmp_path / "afile").write_text("x")
    with caplog.at_level("INFO", logger="dfpir"):
        assert main(["--ckpt", str(ckpt), "-d", "derain", "-i", str(folder), "-o",
                     str(tmp_path / "afile" / "out")]) == 2
    assert "is a file, so nothing can be made under it" in capsys.readouterr().err
    assert "note:" not in caplog.text
