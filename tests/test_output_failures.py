"""Issue 22: a disk that fills up while eval or export writes is ``error:`` naming the place,
not a traceback; restore and export warn about a task the checkpoint never trained on."""

from __future__ import annotations

import errno
import logging

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


def untrained_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "never trained on" in r.getMessage()]


def test_restore_and_export_warn_about_a_task_the_checkpoint_never_trained_on(
        tmp_path, caplog):
    import numpy as np

    from dfpir.cli.restore import main as restore_main
    from dfpir.data import write_image

    ckpt = save_tiny(tmp_path / "tiny.pt")  # the default config: the release's three tasks
    write_image(tmp_path / "in.png", np.full((24, 24, 3), 0.5, np.float32))
    trained = "denoise_15, denoise_25, denoise_50, derain, dehaze"
    with caplog.at_level(logging.WARNING):
        assert restore_main(["--ckpt", str(ckpt), "-i", str(tmp_path / "in.png"), "-o",
                             str(tmp_path / "out.png"), "--degradation", "lowlight"]) == 0
    [warning] = untrained_warnings(caplog)
    assert f"never trained on 'lowlight' (trained on: {trained})" in warning
    assert str(ckpt) in warning

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert export_main(["--ckpt", str(ckpt), "--task", "deblur", "--safetensors",
                            str(tmp_path / "deblur.safetensors")]) == 0
        assert export_main(["--ckpt", str(ckpt), "--task", "derain", "--safetensors",
                            str(tmp_path / "derain.safetensors")]) == 0
    [warning] = untrained_warnings(caplog)  # one: derain was trained
    assert f"never trained on 'deblur' (trained on: {trained})" in warning


def test_trained_tasks_from_the_stored_config_else_the_recorded_orders():
    from types import SimpleNamespace

    from dfpir.loading import trained_tasks

    demo = {"data": {"train_tasks": [{"task": "derain", "repeat": 0}],
                     "builtin": {"enabled": True, "use_for_train": True,
                                 "tasks": ["dehaze", "deblur"]}}}
    assert trained_tasks(SimpleNamespace(stored_config=demo, orders=None)) == ["dehaze",
                                                                               "deblur"]
    recorded = SimpleNamespace(stored_config=None, orders={"names": ["derain"]})
    assert trained_tasks(recorded) == ["derain"]
    assert trained_tasks(SimpleNamespace(stored_config=None, orders=None)) is None  # release


def test_restore_counts_the_files_it_wrote_when_a_side_by_side_fails(
        tmp_path, capsys, monkeypatch):
    """Disk full after an image's own result was written (its side-by-side failed): the count
    says the files that are there, and each failure says its result was written."""
    import numpy as np

    import dfpir.restore.files as files
    from dfpir.cli.restore import main as restore_main
    from dfpir.data import write_image

    ckpt = save_tiny(tmp_path / "tiny.pt")
    for name in ("a", "b"):
        write_image(tmp_path / "in" / f"{name}.png", np.full((16, 16, 3), 0.5, np.float32))
    real = files.write_image

    def full_for_previews(path, *args, **kwargs):
        if path.stem.endswith("_side_by_side"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(files, "write_image", full_for_previews)
    out = tmp_path / "out"
    assert restore_main(["--ckpt", str(ckpt), "-i", str(tmp_path / "in"), "-o", str(out),
                         "-d", "derain", "--side-by-side", "--no-progress"]) == 1
    said = capsys.readouterr()
    assert f"restored 0 of 2 image(s) into {out} (2 file(s) written)" in said.out
    for name in ("a.png", "b.png"):
        assert f"the restored image itself was written: {out / name}" in said.err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
