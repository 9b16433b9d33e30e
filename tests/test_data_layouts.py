"""Pairing in every standard layout, list files, and clear errors on bad folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_data_fixtures import (
    clean_image,
    make_dehaze,
    make_denoise,
    make_derain_test,
    make_derain_train,
    make_gopro_flat,
    make_gopro_nested,
    make_lol,
    write_pair,
)

from dfpir.data import (
    DataConfig,
    DataError,
    LayoutError,
    TaskDataConfig,
    TestSetConfig,
    check_data,
    find_pairs,
    write_image,
)

REPO = Path(__file__).resolve().parents[1]


def stems(pairs):
    return sorted((Path(p.degraded).stem, Path(p.clean).stem) for p in pairs)


def test_denoise_folder_lists_clean_images(tmp_path):
    make_denoise(tmp_path, count=3)
    (tmp_path / "notes.txt").write_text("not an image")
    pairs = find_pairs("denoise_25", [str(tmp_path)])
    assert [p.name for p in pairs] == ["img000", "img001", "img002"]
    assert all(p.degraded == "" for p in pairs)


def test_derain_train_and_test_naming(tmp_path):
    make_derain_train(tmp_path / "train")
    make_derain_test(tmp_path / "test")
    for root in ("train", "test"):
        pairs = find_pairs("derain", [str(tmp_path / root)])
        assert stems(pairs) == [(f"rain-{i}", f"norain-{i}") for i in (1, 2, 3)]
        assert pairs[0].name == "rain-1"


def test_dehaze_ots_many_hazy_per_clean_and_other_extension(tmp_path):
    make_dehaze(tmp_path / "ots", ids=2, per_id=3)
    pairs = find_pairs("dehaze", [str(tmp_path / "ots")])
    assert len(pairs) == 6
    assert {Path(p.clean).name for p in pairs} == {"0001.jpg", "0002.jpg"}
    assert all(Path(p.degraded).stem.split("_")[0] == Path(p.clean).stem for p in pairs)


def test_dehaze_sots_jpg_input_png_target(tmp_path):
    make_dehaze(tmp_path, ids=2, per_id=1, test=True)
    pairs = find_pairs("dehaze", [str(tmp_path)])
    assert stems(pairs) == [("0001_0.8_0.04", "0001"), ("0002_0.8_0.04", "0002")]
    assert pairs[0].clean.endswith(".png") and pairs[0].degraded.endswith(".jpg")


def test_dehaze_hazy_in_part_subfolders(tmp_path):
    image = clean_image(1)
    write_image(tmp_path / "original" / "0005.jpg", image)
    write_image(tmp_path / "synthetic" / "part1" / "0005_0.9_0.1.jpg", image)
    write_image(tmp_path / "synthetic" / "part2" / "0005_1_0.2.jpg", image)
    assert len(find_pairs("dehaze", [str(tmp_path)])) == 2


def test_gopro_flat_and_nested_layouts(tmp_path):
    make_gopro_flat(tmp_path / "flat", count=3)
    make_gopro_nested(tmp_path / "nested", sequences=2, per_sequence=2)
    flat = find_pairs("deblur", [str(tmp_path / "flat")])
    nested = find_pairs("deblur", [str(tmp_path / "nested")], layout="auto")
    assert len(flat) == 3 and len(nested) == 4
    assert {p.name for p in nested} == {
        "GOPR030_07_00_000000",
        "GOPR030_07_00_000001",
        "GOPR031_07_00_000000",
        "GOPR031_07_00_000001",
    }
    for pair in nested:
        assert Path(pair.degraded).parent.parent == Path(pair.clean).parent.parent
    with pytest.raises(LayoutError, match="GoPro_Large"):
        find_pairs("deblur", [str(tmp_path / "nested")], layout="flat")


def test_lowlight_layout_and_custom_folder_names(tmp_path):
    make_lol(tmp_path / "lol")
    assert len(find_pairs("lowlight", [str(tmp_path / "lol")])) == 3
    os.rename(tmp_path / "lol" / "low", tmp_path / "lol" / "dark")
    pairs = find_pairs("lowlight", [str(tmp_path / "lol")], degraded_dir="dark", clean_dir="high")
    assert len(pairs) == 3


def test_list_file_selects_subset_in_its_order(tmp_path):
    make_derain_train(tmp_path, count=4)
    listing = tmp_path / "rainTrain.txt"
    listing.write_text("# subset\nrainy/rain-3.png\n\nrain-1.png\n")
    pairs = find_pairs("derain", [str(tmp_path)], list_file=str(listing))
    assert [p.name for p in pairs] == ["rain-3", "rain-1"]
    listing.write_text("rainy/rain-9.png\n")
    with pytest.raises(LayoutError, match=r"1 of 1 files listed in .*rainTrain.txt are missing.*'rainy/rain-9.png' \(line 1\)"):
        find_pairs("derain", [str(tmp_path)], list_file=str(listing))


def test_missing_root_names_folder_and_expected_layout(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(LayoutError) as info:
        find_pairs("derain", [str(missing)])
    message = str(info.value)
    assert str(missing) in message and "not found" in message
    assert "rainy/rain-1.png" in message and "gt/norain-1.png" in message


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "blur").mkdir()
    (tmp_path / "sharp").mkdir()
    with pytest.raises(LayoutError, match=f"no images in folder {tmp_path / 'blur'}"):
        find_pairs("deblur", [str(tmp_path)])
    (tmp_path / "denoise").mkdir()
    with pytest.raises(LayoutError, match="no images in folder"):
        find_pairs("denoise_15", [str(tmp_path / "denoise")])


def test_wrong_subfolders_list_what_is_there(tmp_path):
    (tmp_path / "hazy").mkdir()
    with pytest.raises(LayoutError) as info:
        find_pairs("dehaze", [str(tmp_path)])
    message = str(info.value)
    assert "synthetic/ + original/" in message and "contains: hazy" in message
    assert "expected layout" in message


def test_unpaired_images_are_named(tmp_path):
    make_lol(tmp_path, count=2)
    write_image(tmp_path / "low" / "extra.png", clean_image(9))
    write_image(tmp_path / "high" / "lonely.png", clean_image(8))
    with pytest.raises(LayoutError) as info:
        find_pairs("lowlight", [str(tmp_path)])
    message = str(info.value)
    assert f"unpaired image {tmp_path / 'low' / 'extra.png'}" in message
    assert f"unpaired image {tmp_path / 'high' / 'lonely.png'}" in message


def _config(tmp_path, **kwargs) -> DataConfig:
    return DataConfig(data_root=str(tmp_path), patch_size=16, **kwargs)


def test_check_reports_pairs_and_every_problem(tmp_path):
    make_gopro_flat(tmp_path / "gopro", count=3)
    write_image(tmp_path / "gopro" / "blur" / "big.png", clean_image(1, 48, 50))
    write_image(tmp_path / "gopro" / "sharp" / "big.png", clean_image(1, 40, 50))
    (tmp_path / "gopro" / "blur" / "broken.png").write_bytes(b"not a png at all")
    write_image(tmp_path / "gopro" / "sharp" / "broken.png", clean_image(2))
    cfg = _config(
        tmp_path,
        train_tasks=[TaskDataConfig(task="deblur", roots=["gopro"], repeat=30)],
        test_sets=[TestSetConfig(name="lol", task="lowlight", root="lol_missing")],
    )
    report = check_data(cfg)
    assert not report.ok
    train, test = report.sets
    assert train.pairs == 5 and f"{tmp_path / 'gopro' / 'blur'}" in train.folders
    text = report.format()
    assert "pair of different sizes" in text and "big.png is 50x48" in text
    assert f"cannot read image {tmp_path / 'gopro' / 'blur' / 'broken.png'}" in text
    assert "root folder not found" in text and "low/<name>.png" in text
    assert "repeat x30: 150 samples per epoch" in text


def test_check_notes_conversions_not_problems(tmp_path):
    gray = np.full((20, 20), 128, np.uint8)
    write_image(tmp_path / "d" / "g.png", gray)
    cfg = _config(
        tmp_path, train_tasks=[TaskDataConfig(task="denoise_25", roots=["d"])], test_sets=[]
    )
    report = check_data(cfg)
    assert report.ok
    assert "converted to 8-bit RGB" in report.format() and "grayscale" in report.format()


def load_script(name: str):
    """The command module behind scripts/<name>.py (run in-process: a subprocess costs
    seconds)."""
    from dfpir.cli import prepare

    return {"prepare_data": prepare}[name]


def test_prepare_data_script_exit_codes(tmp_path, capsys):
    make_derain_test(tmp_path / "test" / "derain" / "Rain100L")
    good = tmp_path / "good.yaml"
    good.write_text(
        f"data:\n  data_root: {tmp_path}\n  train_tasks: []\n  test_sets:\n"
        "    - {name: rain100l, task: derain, root: test/derain/Rain100L}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"data:\n  data_root: {tmp_path}\n")  # the default three-task folders
    typo = tmp_path / "typo.yaml"
    typo.write_text("data:\n  patch_sise: 64\n")
    main = load_script("prepare_data").main
    assert main(["--check", "--config", str(good)]) == 0
    assert "rain100l (task derain): 3 pairs" in capsys.readouterr().out
    assert main(["--check", "--config", str(bad)]) == 1
    assert "expected layout" in capsys.readouterr().out
    assert main(["--check", "--config", str(typo)]) == 2
    assert "data.patch_sise" in capsys.readouterr().err


def test_prepare_data_fills_cache(tmp_path, capsys):
    make_gopro_flat(tmp_path / "gopro", count=2)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data:\n  data_root: {tmp_path}\n  test_sets: []\n  train_tasks:\n"
        "    - {task: deblur, roots: [gopro], repeat: 30}\n"
    )
    main = load_script("prepare_data").main
    cache = tmp_path / "cache"
    assert main(["--check", "--cache", str(cache), "--config", str(config)]) == 0
    assert len(list(cache.rglob("*.npy"))) == 4
    assert f"set data.cache_dir: {cache}" in capsys.readouterr().out


# ------------------------------------------------------------------ the release's lists


def test_release_lists_are_shipped_and_used_by_default():
    from dfpir.data import default_five_task
    from dfpir.data.build import resolve_list_file

    counts = {}
    for name in ("denoise.txt", "rainTrain.txt", "hazy_outside.txt", "train_gopro.txt",
                 "train_lol.txt"):
        path = resolve_list_file(f"release:{name}", "data")
        with open(path, encoding="utf-8") as handle:
            counts[name] = sum(1 for line in handle if line.strip())
    assert counts == {"denoise.txt": 5144, "rainTrain.txt": 200, "hazy_outside.txt": 72135,
                      "train_gopro.txt": 2103, "train_lol.txt": 485}
    lists = {t.task: t.list_file for t in default_five_task().train_tasks}
    assert lists["derain"] == "release:rainTrain.txt" and lists["dehaze"] == "release:hazy_outside.txt"
    assert lists["denoise_25"] == "release:denoise.txt" and lists["lowlight"] == "release:train_lol.txt"
    with pytest.raises(DataError, match="no such shipped list"):
        resolve_list_file("release:nope.txt", "data")


def test_listed_files_missing_on_disk_are_counted_and_named(tmp_path):
    make_derain_train(tmp_path, count=2)  # rain-1, rain-2 on disk
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"rainy/rain-{i}.png\n" for i in range(1, 10)))
    with pytest.raises(LayoutError) as info:
        find_pairs("derain", [str(tmp_path)], list_file=str(listing))
    message = str(info.value)
    assert "7 of 9 files listed in" in message and "'rainy/rain-3.png' (line 3)" in message
    assert "and 2 more" in message and "list_missing: scan" in message
    present = find_pairs("derain", [str(tmp_path)], list_file=str(listing), list_missing="present")
    assert [p.name for p in present] == ["rain-1", "rain-2"]
    listing.write_text("rainy/rain-1.png\nrainy/rain-7.png\n")
    scanned = find_pairs("derain", [str(tmp_path)], list_file=str(listing), list_missing="scan")
    assert sorted(p.name for p in scanned) == ["rain-1", "rain-2"]


def test_nested_gopro_matches_the_release_flattened_names(tmp_path):
    make_gopro_nested(tmp_path)
    names = sorted(p.name for p in find_pairs("deblur", [str(tmp_path)]))
    listing = tmp_path / "train_gopro.txt"
    listing.write_text("".join(f"{n}.png\n" for n in names[::-1]))
    pairs = find_pairs("deblur", [str(tmp_path)], list_file=str(listing))
    assert [p.name for p in pairs] == names[::-1]


def test_prepare_data_check_reports_a_partial_list(tmp_path):
    """prepare_data.py --check on a folder holding part of the release's rain list: the count
    and the first names of the missing files, exit 1, no traceback."""
    import subprocess
    import sys

    root = tmp_path / "data"
    rainy, gt = root / "Train" / "Derain" / "rainy", root / "Train" / "Derain" / "gt"
    for n in (100, 101, 102):
        image = np.full((20, 20, 3), n, dtype=np.uint8)
        write_image(rainy / f"rain-{n}.png", image)
        write_image(gt / f"norain-{n}.png", image)
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "data:\n  data_root: " + str(root) + "\n  test_sets: []\n  train_tasks:\n"
        "    - {task: derain, roots: [Train/Derain], repeat: 120, list_file: release:rainTrain.txt}\n")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(repo / "scripts" / "prepare_data.py"), "--check",
                          "--config", str(config)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(repo)})
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "197 of 200 files listed in" in out.stdout and "rainTrain.txt" in out.stdout
    assert "'rainy/rain-103.png'" in out.stdout


def test_shipped_configs_read_the_release_lists_and_its_selection_settings():
    from dfpir.config import load_config

    expected = {"denoise_15": "release:denoise.txt", "derain": "release:rainTrain.txt",
                "dehaze": "release:hazy_outside.txt"}
    for name, extra in (("three_task", {}), ("five_task", {
            "deblur": "release:train_gopro.txt", "lowlight": "release:train_lol.txt"})):
        cfg = load_config(REPO / "configs" / f"{name}.yaml")
        lists = {t.task: t.list_file for t in cfg.data.train_tasks}
        assert {k: lists[k] for k in {**expected, **extra}} == {**expected, **extra}
        assert all(t.list_missing == "error" for t in cfg.data.train_tasks)
        assert cfg.data.train_crop_multiple == 16 and cfg.data.test_noise == "seeded"
        assert cfg.train.select_on_test is False
    five = load_config(REPO / "configs" / "five_task.yaml").train
    assert (five.select_every_iters, five.select_tolerance_iters,
            five.select_tolerance_epochs) == (3000, 1e-5, 1e-3)


def test_prepare_flattens_gopro_sequences_and_the_check_passes(tmp_path, capsys):
    """GoPro_Large/train/<sequence>/blur|sharp/<frame>.png becomes the release's flat layout
    (<sequence>_<frame>.png), copied, the originals untouched; a second run writes nothing;
    --check then finds every pair the (test's) list names."""
    from dfpir.data.gopro import flatten_gopro

    source = tmp_path / "GoPro_Large" / "train"
    for sequence in ("GOPR0372_07_00", "GOPR0374_11_01"):
        for frame in ("000047.png", "000048.png"):
            write_pair(source / sequence / "blur" / frame, source / sequence / "sharp" / frame,
                       seed=len(sequence) + int(frame[:6]))
    before = sorted(p.relative_to(source) for p in source.rglob("*.png"))
    main = load_script("prepare_data").main
    into = tmp_path / "Train" / "Deblur"
    assert main(["--flatten-gopro", str(source), "--into", str(into)]) == 0
    out = capsys.readouterr().out
    assert "8 file(s) copied, 0 pair(s) already there" in out
    assert "train_gopro.txt names 2103 pairs" in out  # the release's list, checked
    assert sorted(p.name for p in (into / "blur").iterdir()) == [
        "GOPR0372_07_00_000047.png", "GOPR0372_07_00_000048.png",
        "GOPR0374_11_01_000047.png", "GOPR0374_11_01_000048.png"]
    assert sorted(p.relative_to(source) for p in source.rglob("*.png")) == before
    again = flatten_gopro(source, into, link=True)
    assert again.written == 0 and again.kept == 4
    listing = tmp_path / "list.txt"
    listing.write_text("GOPR0372_07_00_000047.png\nGOPR0374_11_01_000048.png\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data:\n  data_root: {tmp_path}\n  test_sets: []\n  train_tasks:\n"
        f"    - {{task: deblur, roots: [Train/Deblur], list_file: {listing}}}\n")
    assert main(["--check", "--config", str(config)]) == 0
    assert main(["--flatten-gopro", str(tmp_path / "nope"), "--into", str(into)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_test_image_too_thin_for_evaluation_is_a_problem_before_training(tmp_path):
    """Evaluation crops each side to a multiple of 16: a 1x200 test image would end a run in
    its final evaluation, after all the training; the check before training names it."""
    import numpy as np

    from dfpir.data import check_data, write_image

    root = tmp_path / "test" / "derain" / "Rain100L"
    make_derain_test(root, count=1)
    write_image(root / "input" / "rain-9.png", np.zeros((1, 200, 3), np.uint8))
    write_image(root / "target" / "norain-9.png", np.zeros((1, 200, 3), np.uint8))
    cfg = DataConfig(data_root=str(tmp_path), train_tasks=[],
                     test_sets=[TestSetConfig(name="r", task="derain", root=str(root))])
    report = check_data(cfg)
    assert not report.ok
    assert any("rain-9.png is 200x1" in p and "at least 16x16" in p
               for s in report.sets for p in s.problems)
