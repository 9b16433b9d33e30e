"""The device report: the quick mode runs every section end to end on the CPU; the pieces
(generated data root, recipe projection, OOM handling) do what they say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dfpir.cli import device_report as script
from dfpir.config import load_config
from dfpir.data import DataConfig, check_data, image_header
from dfpir.data.config import TaskDataConfig
from dfpir.perf import device_report as dr
from dfpir.perf import measure, speed

ROOT = Path(__file__).resolve().parent.parent


def test_quick_report_end_to_end(tmp_path, capsys):
    assert script.main(["--quick", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "device_report.md").read_text()
    report = json.loads((tmp_path / "device_report.json").read_text())
    for heading in ("#### Model throughput", "#### End-to-end training", "#### Inference"):
        assert heading in md
    # throughput: both models, every mode, numbers or a reason
    rows = report["throughput"]
    assert {r["model"] for r in rows} == {"DFPIR", "Restormer"}
    assert {r["mode"] for r in rows} == {m[0] for m in dr.MODES}
    measured = [r for r in rows if "skipped" not in r and "oom" not in r]
    assert measured and all(r["train_img_s"] > 0 and r["forward_img_s"] > 0 for r in measured)
    assert any("compile" in r["mode"] and "skipped" in r for r in rows)
    # training: batch 5 with the cache off and on, all timed, the data wait a fraction
    runs = report["training"]["runs"]
    assert {(r["batch"], r["cache"]) for r in runs} >= {(5, False), (5, True)}
    compiled = [r for r in runs if r["compile"] != "none"]  # on a GPU: timed; here: said why
    assert {r["compile"] for r in compiled} == {"regional", "reduce-overhead"}
    assert all("minutes on a CPU" in r["skipped"] for r in compiled)
    runs = [r for r in runs if r["compile"] == "none"]
    for r in runs:
        assert r["iterations"] >= 1 and 0.0 <= r["data_wait_fraction"] < 1.0 and r["it_s"] > 0
        assert r["kernels_per_step"] > 100  # one profiled step after the warm-up (CPU proxy)
    recipes = [p["recipe"] for p in report["training"]["projections"]["fp32"]]
    assert recipes == ["three_task", "five_task"]
    assert "| fp32 | three_task |" in md and "waiting for data" in md
    # inference: two sizes, whole and tiled, both precisions, bf16 compared with fp32
    inf = report["inference"]
    assert len({r["image"] for r in inf}) == 2 and {r["precision"] for r in inf} == {"fp32",
                                                                                   "bf16"}
    assert {str(r["tile"]) for r in inf} == {"whole", "32"}
    assert all(r["seconds"] > 0 for r in inf)
    assert all(r["psnr_bf16_vs_fp32"] > 20 for r in inf if r["precision"] == "bf16")
    assert "PSNR bf16 vs fp32" in md and "wrote" in capsys.readouterr().out
    # precision: every order under bf16/fp16 (TF32 allowed) equals fp32's; fp16 is finite
    prec = report["precision"]
    assert {(r["amp"], r["tf32"]) for r in prec["orders"]} >= {("bf16", True), ("fp16", True)}
    assert all(sum(r["differing_positions"]) == 0 for r in prec["orders"])
    assert prec["fp16_image"]["finite"] and "#### Precision" in md
    # the recipe's default run (decode cache on) is marked; every stage's memory is reported
    assert [r["cache"] for r in runs if r["recipe_default"]] == [True]
    assert "(recipe default)" in md
    stages = {r["stage"] for r in report["training"]["stage_memory"]}
    assert stages == {s.name for s in load_config(ROOT / "configs" / "five_task.yaml")
                      .train.stages}
    assert "skipped" in report["training"]["compile"] and report["complete"]


def test_report_keeps_what_was_measured_when_a_section_dies(tmp_path, monkeypatch):
    """A lease can end mid-run: the sections measured before are already on disk."""
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dr, "inference", killed)
    with pytest.raises(KeyboardInterrupt):
        dr.run_report(tmp_path, dr.ReportSettings.for_quick(),
                      ROOT / "configs" / "five_task.yaml",
                      sections=("precision", "inference"))
    report = json.loads((tmp_path / "device_report.json").read_text())
    assert "precision" in report and not report.get("complete")
    assert "Partial report" in (tmp_path / "device_report.md").read_text()


def test_missing_config_is_a_one_line_error(tmp_path, capsys):
    assert script.main(["--quick", "--config", str(tmp_path / "nope.yaml"),
                        "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nope.yaml" in err
    assert not (tmp_path / "out").exists()


def test_generated_root_passes_the_data_check_with_real_formats(tmp_path):
    folders = dr.write_data_root(tmp_path, images=2, scale=0.1)
    tasks = [TaskDataConfig(task=t, roots=[folders[t.split("_")[0]]])
             for t in ("denoise_25", "derain", "dehaze", "deblur", "lowlight")]
    report = check_data(DataConfig(data_root=str(tmp_path), train_tasks=tasks, test_sets=[]))
    assert report.ok, report.format()
    h, w, fmt = dr.REAL_IMAGE_SIZES["deblur"]
    header = image_header(next((tmp_path / folders["deblur"] / "blur").iterdir()))
    assert header[:2] in ((round(h * 0.1), round(w * 0.1)), (round(w * 0.1), round(h * 0.1)))
    assert list((tmp_path / folders["dehaze"]).rglob("*.jpg"))


def test_recipe_projection_counts_the_released_sets():
    cfg = load_config(ROOT / "configs" / "three_task.yaml")
    proj = dr.recipe_projection(cfg, {128: 0.01})
    expected = sum(dr.RELEASE_TRAIN_IMAGES[t.task.split("_")[0]] * t.repeat
                   for t in cfg.data.train_tasks)
    assert proj["samples_per_epoch"] == expected
    main, finetune = proj["stages"]
    assert main["iterations"] == expected // 5 * 80
    # 192x192 patches cost (192/128)^2 of a 128x128 one per sample
    assert finetune["hours"] == pytest.approx(
        finetune["iterations"] * 3 * 0.01 * (192 / 128) ** 2 / 3600, abs=0.01)
    assert proj["hours"] == pytest.approx(main["hours"] + finetune["hours"], abs=0.02)


def test_out_of_memory_becomes_a_row_not_a_crash(monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(speed, "benchmark", oom)
    settings = dr.ReportSettings.for_quick()
    settings.modes, settings.batches = ["fp32"], [2]
    rows = dr.throughput(settings, torch.device("cpu"))
    assert len(rows) == 2 and all("out of memory" in r["oom"].lower() for r in rows)
    assert "out of memory" in dr.markdown({"settings": {"quick": True, "size": 32},
                                           "environment": dr.environment(torch.device("cpu")),
                                           "total_s": 0.0, "throughput": rows})
    with pytest.raises(ValueError), measure._catch_oom(torch.device("cpu")):
        raise ValueError("not a memory error")  # other errors pass through


def test_bad_device_and_counts_are_one_line_errors(tmp_path, capsys):
    from dfpir.cli import main as dfpir

    for args in (["--device", "tpu"], ["--train-iters", "0"], ["--workers", "-1"]):
        assert dfpir(["device_report", "--quick", "--out", str(tmp_path / "out"), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and args[0] in err[0] \
            or args[1] in err[0], err
    assert not (tmp_path / "out").exists()
