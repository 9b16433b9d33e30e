"""Issue 22: a disk that fills up while eval or export writes is ``error:`` naming the place,
not a traceback; restore and export warn about a task the checkpoint never trained on."""

from __future__ import annotations

import errno

import pytest
from PIL import Image
from test_eval import our_checkpoint, write_config
from test_onnx_export import save_tiny

from dfpir.cli.eval import main as eval_main
from dfpir.cli.export import main as export_main

pytestmark = pytest.mark.usefixtures("one_thread")


def full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_eval_disk_full_while_saving_images_is_an_error_naming_the_file(
        tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path)
    ckpt = our_checkpoint(tmp_path, config)
    out = tmp_path / "results"
    monkeypatch.setattr(Image.Image, "save", full)
    status = eval_main(["--config", str(config), "--ckpt", str(ckpt), "--out", str(out),
                        "--save-images", "--max-images", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: --out {out}: the disk (or quota) filled up writing "
                           f"{out / 'images'}"), line


@pytest.mark.parametrize("flag", ["--safetensors", "--out"])
def test_export_disk_full_is_an_error_naming_the_place(tmp_path, capsys, monkeypatch, flag):
    import safetensors.torch

    ckpt = save_tiny(tmp_path / "tiny.pt")
    target = tmp_path / ("derain.safetensors" if flag == "--safetensors" else "export")
    task = ["--task", "derain"] if flag == "--safetensors" else []
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    status = export_main(["--ckpt", str(ckpt), *task, flag, str(target)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    assert err.startswith(f"error: {flag} {target}: the disk (or quota) filled up"), err
    assert not target.is_file()
