"""Nothing a user owns is overwritten without --overwrite: restore, eval, export and figures
name their results so that no file that was there before is written over."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from dfpir.cli.eval import main as eval_main
from dfpir.cli.eval import results_folder
from dfpir.cli.export import main as export_main
from dfpir.cli.restore import main as restore_main
from dfpir.cli.visualize import FIGURE_FILES
from dfpir.cli.visualize import main as figures_main
from dfpir.config import ExperimentConfig
from dfpir.data import write_image
from dfpir.errors import OutputPlaceError
from dfpir.models import DFPIR
from dfpir.outputs import free_folder, unique_path

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
            if p.is_file()}


@pytest.fixture
def ckpt(tmp_path) -> Path:
    cfg = ExperimentConfig(model=tiny_config())
    path = tmp_path / "tiny.pt"
    torch.save({"model": DFPIR(cfg.model).state_dict(),
                "config": {"model": cfg.model.__dict__ | {}}}, path)
    return path


def _restore(ckpt: Path, source: Path, out: Path, *extra: str) -> int:
    return restore_main(["--ckpt", str(ckpt), "-i", str(source), "-o", str(out), "-d",
                         "derain", "--no-progress", "--set", "prompts.encoder=hashed",
                         "--device", "cpu", *extra])


def test_restore_into_its_own_folder_keeps_every_file(tmp_path, ckpt, capsys, caplog):
    """The hostile layout: a.jpg's natural output a_jpg.png is the user's own grey photo, and
    A.PNG folds onto a.png. Every original stays byte for byte; four new files are written."""
    folder = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "a.png", "A.PNG"):
        write_image(folder / name, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    write_image(folder / "a_jpg.png", np.full((16, 16), 128, np.uint8))  # the grey photo
    before = _digest(folder)
    assert _restore(ckpt, folder, folder) == 0, capsys.readouterr().err
    after = _digest(folder)
    assert {k: after[k] for k in before} == before  # no original touched
    new = sorted(set(after) - set(before))
    assert len(new) == 4, new
    assert f"restored 4 of 4 image(s) into {folder}" in capsys.readouterr().out
    # a second run restores the photos, not the first run's results (their PNG says what
    # they are): four more files; with --overwrite it replaces its earlier results instead
    with caplog.at_level("INFO", logger="dfpir"):
        assert _restore(ckpt, folder, folder) == 0
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "4 image(s) of" in said and "results of an earlier dfpir restore" in said
    assert "named apart from their input" in said and "a.jpg -> a_jpg_" in said
    assert f"restored 4 of 4 image(s) into {folder}" in capsys.readouterr().out
    second = _digest(folder)
    assert {k: second[k] for k in after} == after and len(second) == len(after) + 4
    for name in set(second) - set(after):
        (folder / name).unlink()
    assert _restore(ckpt, folder, folder, "--overwrite") == 0
    again = _digest(folder)
    assert {k: again[k] for k in before} == before and set(again) == set(after)


def test_results_restored_elsewhere_are_photos_again(tmp_path, ckpt, capsys, caplog):
    """Only a run into the results' own folder skips them: chaining two restorations (one
    folder into another, then that into a third) restores every result."""
    first, second = tmp_path / "first", tmp_path / "second"
    write_image(tmp_path / "in" / "x.png", np.zeros((16, 16, 3), np.uint8))
    assert _restore(ckpt, tmp_path / "in", first) == 0
    with caplog.at_level("INFO", logger="dfpir"):
        assert _restore(ckpt, first, second) == 0, capsys.readouterr().err
    assert [p.name for p in second.iterdir()] == ["x.png"]
    assert "earlier dfpir restore" not in caplog.text
    assert _restore(ckpt, first, first) == 2  # nothing but results: one error line
    assert "holds only results of an earlier dfpir restore" in capsys.readouterr().err


def test_restore_output_names_skip_existing_files(tmp_path, ckpt, capsys):
    source = tmp_path / "x.png"
    write_image(source, np.zeros((16, 16, 3), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "X.PNG").write_bytes(b"the user's")  # another case: the same file on macOS
    assert _restore(ckpt, tmp_path, out, "--side-by-side") == 0, capsys.readouterr().err
    assert (out / "X.PNG").read_bytes() == b"the user's"
    assert sorted(p.name for p in out.iterdir()) == ["X.PNG", "x_2.png",
                                                      "x_2_side_by_side.png"]
    assert _restore(ckpt, tmp_path, out, "--overwrite") == 0  # the name itself, now allowed
    assert (out / "x.png").is_file() and (out / "X.PNG").read_bytes() == b"the user's"


def test_restore_refuses_an_existing_output_file(tmp_path, ckpt, capsys):
    source, target = tmp_path / "x.png", tmp_path / "result.png"
    write_image(source, np.zeros((16, 16, 3), np.uint8))
    target.write_bytes(b"keep")
    assert _restore(ckpt, source, target) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and "--overwrite" in err and "Traceback" not in err
    assert target.read_bytes() == b"keep"
    assert _restore(ckpt, source, target, "--overwrite") == 0
    assert target.read_bytes() != b"keep"


def test_unique_path_avoids_existing_files_in_any_case(tmp_path):
    (tmp_path / "R.png").write_bytes(b"")
    taken: set[str] = set()
    assert unique_path(tmp_path / "r.png", taken) == tmp_path / "r_2.png"
    assert unique_path(tmp_path / "r.png", taken) == tmp_path / "r_3.png"
    assert unique_path(tmp_path / "r.png", set(), keep_existing=False) == tmp_path / "r.png"


def test_eval_default_folder_names_the_run_and_never_lands_on_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = results_folder(None, "runs/a/checkpoints/best.pt")
    assert first == Path("results/eval_a_best")
    assert results_folder(None, "runs/b/checkpoints/best.pt") == Path("results/eval_b_best")
    first.mkdir(parents=True)
    (first / "results.md").write_text("a's results")
    assert results_folder(None, "runs/a/checkpoints/best.pt") == Path("results/eval_a_best_2")
    assert results_folder(None, "dfpir5.ckpt") == Path("results/eval_dfpir5")
    assert free_folder(first.parent / "empty") == first.parent / "empty"
    with pytest.raises(OutputPlaceError, match="already holds files.*--overwrite"):
        results_folder(str(first), "x.pt")
    assert results_folder(str(first), "x.pt", overwrite=True) == first


def test_eval_refuses_a_folder_with_results_before_work(tmp_path, ckpt, capsys):
    out = tmp_path / "res"
    out.mkdir()
    (out / "results.md").write_text("earlier")
    assert eval_main(["--ckpt", str(ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and "Traceback" not in err
    assert (out / "results.md").read_text() == "earlier"


def test_export_refuses_existing_files(tmp_path, ckpt, capsys):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(b"mine")
    assert export_main(["--ckpt", str(ckpt), "--out", str(folder)]) == 2
    assert "weights.safetensors" in capsys.readouterr().err
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"mine")
    assert export_main(["--ckpt", str(ckpt), "--task", "derain", "--onnx", str(onnx)]) == 2
    assert "--overwrite" in capsys.readouterr().err and onnx.read_bytes() == b"mine"
    assert export_main(["--ckpt", str(ckpt), "--task", "derain", "--onnx",
                        str(tmp_path / "x.png")]) == 2
    assert "ending in .onnx" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert (folder / "weights.safetensors").read_bytes() == b"mine"


def test_no_output_is_the_checkpoint_it_reads_even_with_overwrite(tmp_path, ckpt, capsys):
    """The hostile layouts: the checkpoint kept in the export folder under the release name,
    exported onto itself as ONNX, a classifier written over it, a hard link of it as output."""
    from dfpir.cli.train_classifier import main as classifier_main

    folder = tmp_path / "rel"
    folder.mkdir()
    held = folder / "release_layout.pth"
    held.write_bytes(ckpt.read_bytes())
    renamed = tmp_path / "ck.onnx"
    renamed.write_bytes(ckpt.read_bytes())
    linked = tmp_path / "linked.safetensors"
    linked.hardlink_to(ckpt)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    cases = [
        (export_main, ["--ckpt", str(held), "--out", str(folder), "--overwrite"], held),
        (export_main, ["--ckpt", str(renamed), "--task", "derain", "--onnx", str(renamed),
                       "--overwrite"], renamed),
        (export_main, ["--ckpt", str(ckpt), "--task", "derain", "--safetensors", str(linked),
                       "--overwrite"], linked),
        (classifier_main, ["--config", str(ROOT / "configs" / "demo.yaml"), "--ckpt",
                           str(ckpt), "--out", str(linked), "--overwrite"], linked),
    ]
    for main, argv, kept in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "itself" in err and err.count("\n") == 1, err
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == digest, argv
    assert sorted(p.name for p in folder.iterdir()) == ["release_layout.pth"]


def test_figures_refuse_existing_figure_files(tmp_path, ckpt, capsys):
    out = tmp_path / "figures"
    out.mkdir()
    (out / "grid.csv").write_text("mine")
    assert figures_main(["grid", "--ckpt", str(ckpt), "--out", str(out)]) == 2
    assert "grid.csv" in capsys.readouterr().err
    assert (out / "grid.csv").read_text() == "mine"
    assert figures_main(["tsne", "--ckpt", str(tmp_path / "missing.pt"), "--out",
                         str(out)]) == 2  # another figure's names are free: on to the ckpt
    assert "does not exist" in capsys.readouterr().err
    assert all(len(names) == len(set(names)) for names in FIGURE_FILES.values())


def test_figures_with_overwrite_replace_names_never_write_through_links(tmp_path, ckpt):
    """--overwrite replaces a figure's name: a hard link's other name and a symbolic link's
    target (the user's files) keep their content."""
    out = tmp_path / "figures"
    out.mkdir()
    linked, pointed = tmp_path / "my_table.csv", tmp_path / "my_picture.png"
    linked.write_text("mine")
    pointed.write_bytes(b"my picture")
    (out / "shuffle_differ.csv").hardlink_to(linked)
    (out / "shuffle.png").symlink_to(pointed)
    assert figures_main(["shuffle", "--ckpt", str(ckpt), "--out", str(out), "--overwrite",
                         "--set", "prompts.encoder=hashed", "--device", "cpu"]) == 0
    assert linked.read_text() == "mine" and pointed.read_bytes() == b"my picture"
    assert not (out / "shuffle.png").is_symlink()
    assert (out / "shuffle_differ.csv").stat().st_nlink == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no drawing folder left


def test_a_hard_link_to_the_input_is_the_input_even_with_overwrite(tmp_path, ckpt, capsys):
    # another name of the same file: --out naming it, or a folder holding it, never writes it
    source = tmp_path / "a.png"
    write_image(source, np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8))
    before = source.read_bytes()
    (tmp_path / "hard.png").hardlink_to(source)
    assert _restore(ckpt, source, tmp_path / "hard.png", "--overwrite") == 2
    assert "is the input itself (or another name of it, a link)" in capsys.readouterr().err
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").hardlink_to(source)
    assert _restore(ckpt, source, out, "--overwrite") == 0
    assert source.read_bytes() == before and (out / "a.png").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_2.png"]


def test_eval_overwrite_refuses_a_results_name_that_is_a_folder(tmp_path, ckpt, capsys):
    out = tmp_path / "ev"
    (out / "results.md").mkdir(parents=True)
    code = eval_main(["--ckpt", str(ckpt), "--out", str(out), "--overwrite", "--max-images",
                      "1", "--set", "prompts.encoder=hashed", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "results.md there is not a file" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["results.md"]  # nothing written


def test_eval_overwrite_replaces_a_hard_linked_result_without_writing_through(tmp_path, ckpt):
    out = tmp_path / "ev"
    out.mkdir()
    mine = tmp_path / "mine.json"
    mine.write_text('{"mine": 1}')
    (out / "results.json").hardlink_to(mine)
    import dataclasses

    from dfpir.config import load_config, save_config

    demo = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    cfg = tmp_path / "cfg.yaml"  # the demo's built-in test images, the tiny model
    save_config(dataclasses.replace(demo, model=tiny_config()), cfg)
    assert eval_main(["--ckpt", str(ckpt), "--config", str(cfg), "--out", str(out), "--overwrite",
                      "--max-images", "1", "--set", "prompts.encoder=hashed", "--device", "cpu",
                      "--no-progress"]) == 0
    assert mine.read_text() == '{"mine": 1}'
    assert '"average"' in (out / "results.json").read_text()
