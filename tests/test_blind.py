"""Blind restoration (dfpir.blind, ours): the classifier's statistics, its training inside a
tiny run, restore.py --degradation auto (sure and unsure, every file format), eval.py's
accuracy, confusion, blind row and prompt matrix, and train_classifier.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import always_classifier

from dfpir.blind import (
    ClassifierConfig,
    DegradationClassifier,
    choose_degradation,
    classifier_from_checkpoint,
)
from dfpir.blind.features import FEATURE_NAMES, grid_crops, image_features
from dfpir.cli.eval import main as eval_main
from dfpir.cli.restore import main as restore_main
from dfpir.cli.train_classifier import main as train_classifier_main
from dfpir.config import ExperimentConfig, load_config
from dfpir.data import build_test_datasets, load_builtin_image, read_image_raw, write_image
from dfpir.models.checkpoint import read_checkpoint
from dfpir.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]

# two degradations a classifier separates in seconds; a model small enough to train in a few
TINY = [
    "model.dim=8", "model.num_blocks=[1, 1, 1, 1]", "model.num_refinement_blocks=1",
    "model.heads=[1, 2, 2, 4]",
    "data.builtin.tasks=[denoise_50, lowlight]", "data.builtin.train_images=[astronaut]",
    "data.builtin.test_images=[coffee, chelsea]", "data.builtin.repeat=2",
    "data.builtin.test_max_side=96",
    "train.stages=[{name: a, epochs: 1, lr: 0.001, patch_size: 16, batch_size: 2}]",
    "train.save_every_iters=0", "train.sample_images=0", "train.val_every=1",
    "classifier.crop=32", "classifier.samples_per_task=48", "classifier.steps=60",
    "classifier.max_crops=8",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny demo run, classifier included (the demo config turns it on)."""
    path = tmp_path_factory.mktemp("blind") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config(ROOT / "configs" / "demo.yaml", TINY), path)
    finally:
        torch.set_num_threads(threads)
    return path


def _smooth(seed: int = 0) -> np.ndarray:
    return load_builtin_image("coffee", 128)[:64, :64].astype(np.float32) / 255.0


def test_noise_statistics_grow_with_sigma_and_ignore_brightness_scaling():
    clean = _smooth()
    rng = np.random.default_rng(0)
    noises = []
    for sigma in (0, 15, 25, 50):
        noisy = np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1)
        feats = image_features(torch.from_numpy(noisy.transpose(2, 0, 1))[None].float())
        noises.append(float(feats[0, FEATURE_NAMES.index("noise_median")]))
    assert noises == sorted(noises) and noises[3] - noises[1] > 0.4  # log scale: x2 = 0.69
    dark = image_features(torch.from_numpy(clean.transpose(2, 0, 1) * 0.3)[None])
    bright = image_features(torch.from_numpy(clean.transpose(2, 0, 1))[None])
    index = FEATURE_NAMES.index("y_mean")
    assert dark[0, index] < 0.5 * bright[0, index]
    assert len(grid_crops(np.zeros((100, 300, 3), np.float32), 32, 5)) == 5
    assert grid_crops(np.zeros((20, 30, 3), np.float32), 32, 5).shape == (1, 3, 20, 20)


def test_off_by_default_and_bad_settings_are_config_errors():
    assert ExperimentConfig().classifier.enabled is False
    # issue 22: new classifiers learn "clean"; unsure images are left as they are by default
    assert ClassifierConfig().clean_class is True and ClassifierConfig().if_unsure == "stop"
    with pytest.raises(ValueError, match="if_unsure"):
        ClassifierConfig(if_unsure="maybe")
    with pytest.raises(ValueError, match="threshold"):
        load_config(None, ["classifier.threshold=2"])


def test_unsure_choice_names_top_two_and_follows_the_mode():
    clf = DegradationClassifier(["derain", "dehaze", "lowlight"], ClassifierConfig(threshold=0.9))
    prediction = clf.predict(_smooth())
    assert prediction.unsure  # an untrained MLP is far from 0.9 sure
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-5
    restore = choose_degradation(prediction, "restore")
    stop = choose_degradation(prediction, "stop")
    assert restore.degradation == prediction.label and stop.degradation is None
    assert choose_degradation(prediction).degradation is None  # the default: left as it is
    for choice in (restore, stop):
        assert prediction.label in choice.message and prediction.runner_up in choice.message
        assert "unsure" in choice.message
    sure = clf.predict(_smooth(), threshold=0.0)
    assert choose_degradation(sure, "stop").degradation == sure.label


def test_run_trains_stores_and_reports_the_classifier(run_dir):
    ckpt = read_checkpoint(run_dir / "checkpoints" / "latest.pt")
    for name in ("stage1_a.pt", "best.pt"):
        assert "classifier" in read_checkpoint(run_dir / "checkpoints" / name)
    clf = classifier_from_checkpoint(ckpt)
    assert clf.classes == ["denoise_50", "lowlight", "clean"] and clf.config.crop == 32
    table = (run_dir / "final_results.md").read_text()
    assert "classifier accuracy" in table and "blind PSNR" in table
    cfg = load_config(ROOT / "configs" / "demo.yaml", TINY)
    correct = 0
    for dataset in build_test_datasets(cfg.data).values():
        for index in range(len(dataset)):
            correct += clf.predict(dataset[index][0]).label == dataset.task
    assert correct == 4  # noise and darkness: every held-out image right
    rows = [line for line in table.splitlines() if line.startswith("| builtin_")]
    assert all(line.rstrip(" |").split("|")[-2].strip() == "100%" for line in rows)


def test_restore_auto_every_format_sure_and_unsure(run_dir, tmp_path, capsys):
    ckpt = run_dir / "checkpoints" / "latest.pt"
    photos = tmp_path / "in"
    dark = (load_builtin_image("coffee", 96)[:48, :64] * 0.15).astype(np.uint8)
    write_image(photos / "rgb.png", dark)
    write_image(photos / "grey16.png", (dark.mean(axis=2) * 257).astype(np.uint16))
    write_image(photos / "rgba.png", np.dstack([dark, np.full(dark.shape[:2], 200, np.uint8)]))
    out = tmp_path / "out"
    assert restore_main(["--ckpt", str(ckpt), "-i", str(photos), "-o", str(out),
                         "--degradation", "auto", "--tile", "32", "--tile-overlap", "8",
                         "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("predicted lowlight") == 3 and "runner-up denoise_50" in printed
    assert read_image_raw(out / "grey16.png").dtype == np.uint16
    assert read_image_raw(out / "grey16.png").ndim == 2
    assert read_image_raw(out / "rgba.png").shape == (48, 64, 4)

    stop = tmp_path / "stop"
    assert restore_main(["--ckpt", str(ckpt), "-i", str(photos), "-o", str(stop),
                         "-d", "auto", "--threshold", "1", "--if-unsure", "stop",
                         "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("unsure (below 1.00)") == 3 and "not restored" in captured.out
    assert not stop.exists() or not any(stop.iterdir())
    again = tmp_path / "again"
    assert restore_main(["--ckpt", str(ckpt), "-i", str(photos / "rgb.png"), "-o",
                         str(again), "-d", "auto", "--threshold", "1", "--if-unsure", "restore",
                         "--no-progress"]) == 0
    assert "restoring with lowlight" in capsys.readouterr().out
    assert (again / "rgb.png").is_file()
    default = tmp_path / "default"  # no --if-unsure: an unsure image is left as it is
    assert restore_main(["--ckpt", str(ckpt), "-i", str(photos / "rgb.png"), "-o",
                         str(default), "-d", "auto", "--threshold", "1", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "not restored (--if-unsure stop)" in captured.out and "restored 0 of 1" in captured.out
    assert not default.exists() or not any(default.iterdir())


def test_restore_auto_leaves_a_clean_photo_as_it_is(run_dir, tmp_path, capsys):
    """Issue 22: a clean photo is predicted "clean", not restored and said so; a degraded one
    in the same folder is still restored, and the count is the files written."""
    ckpt = run_dir / "checkpoints" / "latest.pt"
    photos = tmp_path / "in"
    coffee = load_builtin_image("coffee", 96)
    write_image(photos / "clean.png", coffee)
    write_image(photos / "dark.png", (coffee * 0.15).astype(np.uint8))
    out = tmp_path / "out"
    assert restore_main(["--ckpt", str(ckpt), "-i", str(photos), "-o", str(out),
                         "-d", "auto", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "clean.png: looks clean: left as it is" in printed
    assert "dark.png: predicted lowlight" in printed
    assert sorted(p.name for p in out.iterdir()) == ["dark.png"]
    assert "restored 1 of 2" in printed and "1 left as they are" in printed


def test_a_clean_top_guess_is_left_as_it_is_in_every_mode():
    clf = always_classifier("clean", ["derain", "dehaze", "clean"])
    sure = clf.predict(_smooth())
    assert sure.label == "clean" and not sure.unsure
    for mode in ("stop", "restore"):
        choice = choose_degradation(sure, mode)
        assert choice.degradation is None and choice.clean
        assert choice.message.startswith("looks clean: left as it is (p=1.00")
    with torch.no_grad():  # p(clean) = e / (e + 2) = 0.58, below the threshold 0.6
        clf.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    unsure = clf.predict(_smooth())
    assert unsure.label == "clean" and unsure.unsure
    guessed = choose_degradation(unsure, "restore")
    assert guessed.degradation is None and guessed.clean and "left as it is" in guessed.message
    stopped = choose_degradation(unsure)  # an unsure clean top guess is handled, not a failure
    assert stopped.degradation is None and stopped.clean and "left as it is" in stopped.message
    with torch.no_grad():  # an unsure degradation guess keeps --if-unsure stop's meaning
        clf.net[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    unsure = clf.predict(_smooth())
    assert unsure.label == "derain" and unsure.unsure
    stopped = choose_degradation(unsure)
    assert stopped.degradation is None and not stopped.clean and "not restored" in stopped.message


def test_old_classifier_state_without_clean_still_loads_and_restores(run_dir, tmp_path, capsys):
    """A state written before the clean class (version 1: no clean_class key, if_unsure
    "restore", the old default) loads with its own classes and today's if_unsure default."""
    old = always_classifier("lowlight", ["denoise_50", "lowlight"]).to_state()
    old["version"] = 1
    old["config"] = {k: v for k, v in old["config"].items() if k != "clean_class"}
    old["config"]["if_unsure"] = "restore"
    clf = DegradationClassifier.from_state(old)
    assert clf.classes == ["denoise_50", "lowlight"]
    assert clf.config.clean_class is False and clf.config.if_unsure == "stop"
    assert clf.predict(_smooth()).label == "lowlight"
    separate = tmp_path / "old.pt"
    torch.save({"classifier": old}, separate)
    photo = tmp_path / "p.png"
    write_image(photo, load_builtin_image("coffee", 64))
    assert restore_main(["--ckpt", str(run_dir / "checkpoints" / "latest.pt"), "-i",
                         str(photo), "-o", str(tmp_path / "r"), "-d", "auto", "--classifier",
                         str(separate), "--no-progress"]) == 0
    assert "predicted lowlight" in capsys.readouterr().out
    assert (tmp_path / "r" / "p.png").is_file()


def test_blind_row_counts_a_clean_prediction_on_a_degraded_image_as_wrong(run_dir):
    """A degraded test image predicted "clean" is left as it is: wrong, and scored as the
    input itself (no prompt is asked for)."""
    from dfpir.eval.blind import evaluate_blind
    from dfpir.eval.metrics import compute_metrics
    from dfpir.loading import load_experiment

    loaded = load_experiment(run_dir / "checkpoints" / "latest.pt", None, [], "cpu")
    datasets = build_test_datasets(load_config(ROOT / "configs" / "demo.yaml", TINY).data)

    def no_prompt(task: str) -> torch.Tensor:
        raise AssertionError(f"asked for the prompt of {task}")

    report = evaluate_blind(loaded.model, always_classifier("clean", ["denoise_50", "lowlight", "clean"]),
                            datasets, {}, no_prompt, device=torch.device("cpu"))
    assert report.correct == 0 and report.accuracy == 0.0
    for result, dataset in zip(report.sets, datasets.values(), strict=True):
        for index, image in enumerate(result.images):
            degraded, clean = dataset[index][:2]
            assert image.predicted == "clean"
            assert image.psnr == pytest.approx(compute_metrics(degraded, clean).psnr)


def test_eval_reports_accuracy_confusion_blind_row_and_prompt_matrix(run_dir, tmp_path):
    out = tmp_path / "eval"
    config = str(run_dir / "config.yaml")
    assert eval_main(["--config", config, "--ckpt", str(run_dir / "checkpoints" / "latest.pt"),
                      "--out", str(out), "--prompt-matrix", "--no-progress"]) == 0
    markdown = (out / "results.md").read_text()
    assert "blind (predicted prompt)" in markdown and "oracle (true prompt)" in markdown
    with (out / "confusion.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["true"] for r in rows] == ["denoise_50", "lowlight"]
    assert [int(r[r["true"]]) for r in rows] == [2, 2]  # every image on the diagonal
    blind = json.loads((out / "results.json").read_text())["blind"]
    assert blind["accuracy"] == 1.0
    for entry in blind["sets"].values():  # right predictions: the oracle's own scores
        assert entry["psnr"] == pytest.approx(entry["oracle_psnr"])
    with (out / "prompt_matrix.csv").open() as handle:
        matrix = list(csv.DictReader(handle))
    assert len(matrix) == 2 * 3  # two sets x (two prompts + the input)
    scores = {(r["set"], r["prompt"]): float(r["psnr"]) for r in matrix}
    results = json.loads((out / "results.json").read_text())["sets"]
    for name, entry in results.items():  # the true-prompt column is the oracle evaluation
        assert scores[name, entry["task"]] == pytest.approx(entry["psnr"], abs=1e-3)
    assert "**" in (out / "prompt_matrix.md").read_text()


def test_train_classifier_script_and_missing_classifier(run_dir, tmp_path, capsys):
    ckpt = read_checkpoint(run_dir / "checkpoints" / "latest.pt")
    bare = tmp_path / "bare.pt"
    torch.save({k: v for k, v in ckpt.items() if k != "classifier"}, bare)
    photo = tmp_path / "p.png"
    write_image(photo, load_builtin_image("coffee", 64))
    out = tmp_path / "none"
    assert restore_main(["--ckpt", str(bare), "-i", str(photo), "-o", str(out), "-d", "auto"]) == 2
    error = capsys.readouterr().err
    assert "no degradation classifier" in error and "train_classifier.py" in error
    assert len(error.strip().splitlines()) == 1 and not out.exists()

    config = str(run_dir / "config.yaml")
    assert train_classifier_main(["--config", config, "--ckpt", str(bare),
                                  "--set", "classifier.tasks=[denoise_50, derain]"]) == 2
    assert "no training data" in capsys.readouterr().err
    assert "classifier" not in read_checkpoint(bare)
    assert train_classifier_main(["--config", config, "--ckpt", str(bare),
                                  "--set", "classifier.steps=5"]) == 0
    added = read_checkpoint(bare)
    assert classifier_from_checkpoint(added).config.steps == 5
    assert all(torch.equal(added["model"][k], v) for k, v in ckpt["model"].items())
    separate = tmp_path / "clf.pt"
    assert train_classifier_main(["--config", config, "--out", str(separate)]) == 0
    assert restore_main(["--ckpt", str(run_dir / "checkpoints" / "latest.pt"), "-i", str(photo),
                         "-o", str(tmp_path / "r"), "-d", "auto", "--classifier", str(separate),
                         "--no-progress"]) == 0


def test_restore_auto_and_eval_read_the_checkpoint_once(run_dir, tmp_path, monkeypatch):
    """The weights and the classifier come from one read of the file (load_experiment keeps
    the classifier's state), not one read each."""
    ckpt = run_dir / "checkpoints" / "latest.pt"
    reads: list[str] = []
    load = torch.load

    def counting(f, *args, **kwargs):
        if str(f) == str(ckpt):
            reads.append(str(f))
        return load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    photo = tmp_path / "photo.png"
    write_image(photo, load_builtin_image("coffee", 64)[:32, :32])
    assert restore_main(["--ckpt", str(ckpt), "-i", str(photo), "-o", str(tmp_path / "out"),
                         "-d", "auto", "--no-progress"]) == 0
    assert len(reads) == 1
    reads.clear()
    assert eval_main(["--config", str(run_dir / "config.yaml"), "--ckpt", str(ckpt),
                      "--out", str(tmp_path / "eval"), "--no-progress"]) == 0
    assert len(reads) == 1


def test_images_too_small_or_flat_are_refused_one_by_one():
    """Issue 22, class 4: the statistics of a 1x1, a 1xN or a flat image say nothing; each
    is a DataError of its own (IndexError before)."""
    from dfpir.blind.classifier import UnjudgeableImageError

    clf = DegradationClassifier(["derain", "dehaze"], ClassifierConfig())
    for image in (np.zeros((1, 1, 3), np.float32), np.zeros((1, 10000, 3), np.float32),
                  np.zeros((64, 64, 3), np.float32)):
        with pytest.raises(UnjudgeableImageError):
            clf.predict(image)
    clf.predict(_smooth())  # a real image is judged


def test_restore_auto_goes_on_past_a_1x1_image(run_dir, tmp_path, capsys):
    ckpt = run_dir / "checkpoints" / "latest.pt"
    photos = tmp_path / "in"
    write_image(photos / "a_tiny.png", np.full((1, 1, 3), 80, np.uint8))
    write_image(photos / "b_black.png", np.zeros((40, 40, 3), np.uint8))
    write_image(photos / "c_good.png", (load_builtin_image("coffee", 96)[:48, :64] * 0.15
                                        ).astype(np.uint8))
    out = tmp_path / "out"
    assert restore_main(["--ckpt", str(ckpt), "-i", str(photos), "-o", str(out),
                         "--degradation", "auto", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["c_good.png"]
    assert "restored 1 of 3" in captured.out
    assert "a_tiny.png" in captured.err and "too small" in captured.err
    assert "b_black.png" in captured.err and "flat colour" in captured.err
    assert "Traceback" not in captured.err


def test_a_grey_photo_is_not_dehazed_on_a_guess():
    """Haze is told partly by faded colour, which a grey photo always has: on a grey photo a
    haze guess is not trusted however sure; other guesses (told by brightness and texture)
    and a clean one are followed as on colour photos."""
    from dfpir.blind import is_grey

    grey = np.repeat(_smooth().mean(axis=2, keepdims=True), 3, axis=2)
    assert is_grey(grey) and not is_grey(_smooth())
    hazy = always_classifier("dehaze", ["derain", "dehaze", "clean"]).predict(grey)
    assert hazy.label == "dehaze" and not hazy.unsure
    stopped = choose_degradation(hazy, "stop", grey=True)
    assert stopped.degradation is None and not stopped.clean and "greyscale" in stopped.message
    followed = choose_degradation(hazy, "restore", grey=True)
    assert followed.degradation == "dehaze" and "--if-unsure restore" in followed.message
    assert choose_degradation(hazy, "stop").degradation == "dehaze"  # colour: as before
    clean = always_classifier("clean", ["derain", "dehaze", "clean"]).predict(grey)
    assert choose_degradation(clean, "stop", grey=True).clean
    dark = always_classifier("lowlight", ["lowlight", "dehaze", "clean"]).predict(grey)
    assert choose_degradation(dark, "stop", grey=True).degradation == "lowlight"
