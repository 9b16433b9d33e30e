"""The command line: one package (dfpir.cli) behind the ``dfpir`` command and the scripts/
shims; each user error ends in one ``error: ...`` line naming the thing, exit status 2, and
nothing on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dfpir.cli import COMMANDS
from dfpir.cli import main as dfpir
from dfpir.config import ConfigError, load_config
from dfpir.data import write_image
from dfpir.models import DFPIR

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "configs" / "demo.yaml")
TINY = ["--set", "model.dim=8", "--set", "model.heads=[1, 2, 2, 4]",
        "--set", "data.builtin.test_max_side=32", "--set", "data.builtin.tasks=[derain]",
        "--set", "data.builtin.train_images=[astronaut]",
        "--set", "data.builtin.test_images=[coffee]", "--set", "classifier.enabled=false"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def train(tmp_path: Path, *extra: str) -> int:
    return dfpir(["train", "--config", DEMO, "--run-dir", str(tmp_path / "run"), *TINY, *extra])


@pytest.mark.parametrize(("extra", "names"), [
    (["--set", "train.scheduler=cosin"], ["train.scheduler", "cosine"]),
    (["--set", "train.loss=l3"], ["train.loss", "'l1'"]),
    (["--set", "prompts.encoder=clip", "--set", "prompts.clip_weights=/nowhere/ViT-B-32.pt"],
     ["/nowhere/ViT-B-32.pt"]),
    (["--set", "data.builtin.enabled=false", "--set", "data.data_root=/nowhere",
      "--set", "data.train_tasks=[{task: derain, roots: [Train/Derain]}]"],
     ["/nowhere/Train/Derain"]),
    (["--device", "cuda:99"], ["cuda:99"]),
    (["--device", "gpu"], ["train.device", "gpu"]),
], ids=["invalid-choice", "invalid-loss", "missing-clip-weights", "missing-data",
        "missing-device", "bad-device-name"])
def test_train_user_errors_leave_nothing_on_disk(tmp_path, capsys, extra, names):
    assert train(tmp_path, *extra) == 2
    line = one_error_line(capsys)
    for name in names:
        assert name in line, line
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ConfigError, match="train.scheduler"):
        train(tmp_path, "--set", "train.scheduler=cosin", "--debug")
    assert not (tmp_path / "run").exists()


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    cfg = load_config(DEMO, [a for a in TINY if a != "--set"] + ["model.gamma=0.9"])
    path = tmp_path / "tiny.pt"
    torch.save({"model": DFPIR(cfg.model).state_dict(),
                "config": {"model": cfg.model.__dict__ | {}}}, path)
    return path


def test_conflicting_yaml_and_checkpoint(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "results"
    args = ["--config", DEMO, *TINY, "--ckpt", str(tiny_checkpoint), "--out", str(out)]
    assert dfpir(["eval", *args, "--set", "model.dim=16", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "model.dim=16" in line and "--override-arch" in line and str(tiny_checkpoint) in line
    assert not out.exists()
    image = tmp_path / "in.png"
    write_image(image, np.zeros((8, 8, 3), np.uint8))
    assert dfpir(["restore", "--ckpt", str(tiny_checkpoint), "--set", "model.gamma=0.5",
                  "--input", str(image), "--out", str(out), "-d", "derain"]) == 2
    assert "model.gamma=0.5" in one_error_line(capsys) and not out.exists()


def test_eval_bad_device_and_missing_checkpoint(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "results"
    base = ["eval", "--config", DEMO, *TINY, "--out", str(out), "--no-progress"]
    assert dfpir([*base, "--ckpt", str(tiny_checkpoint), "--device", "cuda:99"]) == 2
    assert "cuda:99" in one_error_line(capsys)
    assert dfpir([*base, "--ckpt", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in one_error_line(capsys)
    assert not out.exists()


def test_prepare_takes_set_like_the_others(tmp_path, capsys):
    assert dfpir(["prepare", "--check", "--preset", "three_task",
                  "--set", f"data.data_root={tmp_path / 'nowhere'}"]) == 1
    said = capsys.readouterr().out
    assert str(tmp_path / "nowhere" / "Train") in said
    # said once at the top, not as thousands of listed files missing under each absent folder
    assert said.startswith(f"PROBLEM: the data root {tmp_path / 'nowhere'} is not a folder")
    assert "files listed in" not in said
    assert dfpir(["prepare", "--check", "--preset", "three_task",
                  "--data-root", str(tmp_path / "alias")]) == 1
    assert str(tmp_path / "alias") in capsys.readouterr().out
    assert dfpir(["prepare", "--check", "--set", "train.loss=l1"]) == 2
    assert "data:" in one_error_line(capsys)


def test_dispatcher_lists_every_command(capsys):
    assert dfpir(["--help"]) == 0
    usage = capsys.readouterr().out
    for name in ("train", "eval", "restore", "prepare", "visualize", "benchmark", "export"):
        assert name in COMMANDS and name in usage
    assert dfpir(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_scripts_are_shims_over_the_package():
    for script in sorted((ROOT / "scripts").glob("*.py")):
        text = script.read_text()
        code = [line for line in text.split('"""')[-1].splitlines() if line.strip()]
        assert any(line.startswith("from dfpir.cli.") for line in code), script
        assert len(code) <= 5, (script, code)


def test_python_m_dfpir_runs_a_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dfpir", "train", "--config", DEMO,
                           "--run-dir", str(tmp_path / "run"), "--set", "train.loss=l3"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: train.loss")
    assert not (tmp_path / "run").exists()


def test_output_paths_are_checked_before_any_work(tmp_path, capsys, tiny_checkpoint):
    """Issue 11, item 6: an output that cannot be written as asked is an error before the model
    is even loaded, and nothing is created."""
    from dfpir.cli.eval import main as eval_main
    from dfpir.cli.restore import main as restore_main

    photo = tmp_path / "in.png"
    write_image(photo, np.zeros((12, 12, 3), np.uint8))
    taken = tmp_path / "report.txt"
    taken.write_text("keep me")
    assert eval_main(["--config", DEMO, "--ckpt", str(tiny_checkpoint), "--out", str(taken)]) == 2
    assert "existing file" in one_error_line(capsys) and taken.read_text() == "keep me"
    assert restore_main(["--ckpt", str(tiny_checkpoint), "-i", str(photo), "-o",
                         str(tmp_path / "out.jpg"), "-d", "derain"]) == 2
    assert "written as PNG" in one_error_line(capsys)
    assert not (tmp_path / "out.jpg").exists()
    for tile in (["--tile", "-5"], ["--tile", "16", "--tile-overlap", "16"]):
        assert restore_main(["--ckpt", str(tiny_checkpoint), "-i", str(photo), "-o",
                             str(tmp_path / "o"), "-d", "derain", *tile]) == 2
        assert "--tile" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_set_model_empty_takes_the_checkpoints_architecture(tiny_checkpoint):
    """Another config's test sets with the checkpoint's own model (docs/evaluation.md)."""
    from dfpir.loading import experiment_config
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    three = Path(DEMO).parent / "three_task.yaml"
    with pytest.raises(ConfigError, match="--override-arch"):
        experiment_config(ckpt, three)
    cfg, source = experiment_config(ckpt, three, ["model={}"])
    assert source == "checkpoint" and cfg.model.__dict__ == ckpt["config"]["model"]
    assert cfg.data == load_config(three).data


def test_help_into_a_closed_pipe_is_quiet():
    """``python -m dfpir --help | head``: the reader leaving early is no traceback (issue 24)."""
    proc = subprocess.Popen([sys.executable, "-m", "dfpir", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    proc.stdout.close()  # closed before the child prints: its write meets a broken pipe
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err and b"BrokenPipe" not in err


def test_version_and_did_you_mean(capsys):
    from importlib.metadata import version

    from dfpir.prompts import PromptError, get_degradation

    assert dfpir(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"dfpir {version('dfpir')} (torch ")
    assert dfpir(["trian"]) == 2
    assert "unknown command 'trian'; did you mean 'train'?" in capsys.readouterr().err
    with pytest.raises(PromptError, match="did you mean 'derain'"):
        get_degradation("derian")
