"""The analysis figures (dfpir.analysis, dfpir visualize) on a tiny model and the built-in
images shrunk to 64 pixels: files are written and the numbers behind them hold."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image

from dfpir.analysis import (
    channel_orders,
    clip_perplexity,
    compute_features,
    compute_grid,
    compute_shuffle,
    compute_tsne,
    differ_matrix,
    load_analysis,
    pick_image,
    record,
    save_features,
    save_grid,
    save_shuffle,
    save_tsne,
)
from dfpir.analysis.common import Analysis
from dfpir.config import ConfigError, load_config
from dfpir.models import DFPIR

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.dim=8", "model.num_blocks=[1, 1, 1, 1]", "model.num_refinement_blocks=1",
        "model.heads=[1, 2, 2, 4]", "data.builtin.test_max_side=64"]


def _script():
    from dfpir.cli import visualize

    return visualize


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # tiny tensors: one thread is faster than two on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = load_config(ROOT / "configs" / "demo.yaml", TINY)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"model": DFPIR(cfg.model).state_dict(), "config": dataclasses.asdict(cfg)}, path)
    return path


@pytest.fixture(scope="module")
def analysis(checkpoint) -> Analysis:
    return load_analysis(checkpoint, device="cpu")


def _png_ok(path: Path, min_width: int = 300, min_height: int = 200) -> None:
    assert path.is_file() and path.stat().st_size > 5000
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height
        assert image.width <= 4000 and image.height <= 4000


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_config_comes_from_the_checkpoint(analysis):
    assert analysis.model.config.dim == 8
    assert analysis.cfg.data.builtin.test_max_side == 64
    assert list(analysis.test_sets()) == ["builtin_denoise_25", "builtin_derain",
                                          "builtin_dehaze", "builtin_deblur", "builtin_lowlight"]


# ------------------------------------------------------------------ shuffle (Figure 7)


def test_channel_orders_are_permutations_per_prompt(analysis):
    result = compute_shuffle(analysis, ["derain", "dehaze", "derain"])
    assert list(result.orders) == ["dgpb_level1", "dgpb_level2", "dgpb_level3", "dgpb_latent"]
    for block, orders in result.orders.items():
        channels = 2 * analysis.model.dgpbs()[block].dgcpm.expand.in_channels
        assert orders.shape == (3, channels)
        for order in orders:
            assert sorted(order.tolist()) == list(range(channels))
        np.testing.assert_array_equal(orders[0], orders[2])  # same prompt, same order
        assert (orders[0] != orders[1]).any()  # two prompts, two orders
        assert np.all(np.diff(result.scores[block], axis=1) <= 0)  # descending scores
        differ = result.differ(block)
        np.testing.assert_allclose(differ, differ.T)
        assert differ[0, 2] == 0 and differ[0, 1] > 0 and np.all(np.diag(differ) == 0)


def test_channel_order_is_the_one_the_forward_pass_uses(analysis):
    """The order computed from the prompt equals the one from the scores the DGM emits in a
    real forward pass (hooked), for every block."""
    model = analysis.model
    prompt = analysis.prompts(["dehaze"])
    orders, _ = channel_orders(model, prompt)
    names = [f"{b}.dgm" for b in model.dgpbs()]
    with torch.no_grad(), record(model, outputs=names) as store:
        model(torch.rand(1, 3, 16, 16), prompt)
    for block, dgpb in model.dgpbs().items():
        _, order = dgpb.dgcpm.channel_order(store[f"{block}.dgm"])
        np.testing.assert_array_equal(order.numpy(), orders[block])


def test_differ_matrix():
    orders = np.array([[0, 1, 2, 3], [1, 0, 2, 3], [0, 1, 2, 3]])
    np.testing.assert_allclose(differ_matrix(orders),
                               [[0, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0]])


def test_shuffle_files(analysis, tmp_path):
    result = compute_shuffle(analysis)
    assert result.tasks == ["denoise_25", "derain", "dehaze", "deblur", "lowlight"]
    paths = save_shuffle(result, tmp_path)
    _png_ok(paths["png"], 800, 600)
    rows = _rows(paths["csv"])
    assert len(rows) == 5 * 5 * 5  # four blocks and their mean, 5 x 5 tasks each
    assert {r["block"] for r in rows} == {*result.orders, "mean"}
    assert all(0 <= float(r["fraction_differ"]) <= 1 for r in rows)
    with np.load(paths["npz"]) as data:
        np.testing.assert_array_equal(data["dgpb_latent/order"], result.orders["dgpb_latent"])
    assert len(_rows(paths["identity"])) == 4 * 5


def test_shuffle_needs_a_dgcpm(tmp_path):
    model = DFPIR(tiny_config(dgcpm=False))
    analysis = Analysis(model, load_config(ROOT / "configs" / "demo.yaml", TINY),
                        torch.device("cpu"))
    with pytest.raises(ValueError, match="no DGCPM"):
        compute_shuffle(analysis)


# ------------------------------------------------------------------ t-SNE (Figure 3)


def test_tsne_points_and_silhouette(analysis, tmp_path):
    result = compute_tsne(analysis, crops=2, crop_size=24, sets=["builtin_derain",
                                                                 "builtin_dehaze",
                                                                 "builtin_lowlight"])
    samples = 3 * 2 * (1 + 2)  # sets x images x (whole + crops)
    assert result.embedding.shape == (samples, 2)
    assert result.features.shape == (samples, 8 * 8)  # latent: 8 * dim channels
    assert len(result.tasks) == samples and result.crops.count(0) == 6
    assert result.perplexity < samples
    assert -1.0 <= result.silhouette <= 1.0 and -1.0 <= result.silhouette_2d <= 1.0
    assert all(b[2] == b[3] == 24 for b, c in zip(result.boxes, result.crops, strict=True) if c)
    paths = save_tsne(result, tmp_path)
    _png_ok(paths["png"])
    assert len(_rows(paths["csv"])) == samples
    (summary,) = _rows(paths["summary"])
    assert int(summary["samples"]) == samples and int(summary["tasks"]) == 3
    assert math.isclose(float(summary["silhouette"]), result.silhouette, rel_tol=1e-4)


def test_tsne_other_layer_and_early_stop(analysis):
    """Stopping the forward pass at the layer gives the same features as a full pass."""
    result = compute_tsne(analysis, layer="encoder_level2", crops=0,
                          sets=["builtin_derain", "builtin_dehaze"])
    assert result.features.shape == (4, 16)
    degraded = analysis.test_sets()["builtin_derain"][0][0][None]
    with torch.no_grad(), record(analysis.model, outputs=["encoder_level2"]) as store:
        analysis.model(degraded, analysis.prompts(["derain"]))
    np.testing.assert_allclose(store["encoder_level2"].mean((2, 3))[0].numpy(),
                               result.features[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no module"):
        compute_tsne(analysis, layer="dgpb_latnet", crops=0)


def test_perplexity_is_clipped():
    assert clip_perplexity(30, 1000) == 30
    assert clip_perplexity(30, 10) == 3
    assert clip_perplexity(30, 2) == 1 < 2


# ------------------------------------------------------------------ features (Figure 6)


def test_feature_maps_have_the_level_sizes(analysis, tmp_path):
    image, clean, task, name = pick_image(analysis, set_name="builtin_deblur", index=1)
    h, w = image.shape[-2:]
    blocks = list(analysis.model.dgpbs())
    result = compute_features(analysis, image, task, blocks, clean, name)
    assert task == "deblur" and name == "builtin_deblur/chelsea"
    for block, stride, channels in zip(blocks, (1, 2, 4, 8), (8, 16, 32, 64), strict=True):
        maps = result.blocks[block]
        assert maps.stride == stride and maps.channels == channels
        for stage in ("input", "dgcpm", "caapm"):
            assert maps.maps[stage].shape == (math.ceil(h / stride), math.ceil(w / stride))
        assert not np.allclose(maps.maps["input"], maps.maps["dgcpm"])
        assert not maps.notes
    assert result.restored.shape == result.degraded.shape == (h, w, 3)
    paths = save_features(result, tmp_path)
    _png_ok(paths["png"], 800, 400)
    assert len(_rows(paths["csv"])) == 4 * 3


def test_feature_maps_of_an_odd_sized_file(analysis, tmp_path):
    """A file whose size is not a multiple of 8: maps cropped back to the image's area."""
    path = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 50, 3), np.uint8)).save(path)
    image, clean, task, _ = pick_image(analysis, image=path, task="dehaze")
    assert clean is None and image.shape == (3, 37, 50)
    result = compute_features(analysis, image, task, ["dgpb_level1", "dgpb_level3"])
    assert result.blocks["dgpb_level1"].maps["caapm"].shape == (37, 50)
    assert result.blocks["dgpb_level3"].maps["input"].shape == (10, 13)
    _png_ok(save_features(result, tmp_path)["png"], 600, 150)
    with pytest.raises(ValueError, match="--task"):
        pick_image(analysis, image=path)


@pytest.mark.parametrize("switches", [dict(dgcpm=False), dict(caapm=False)])
def test_feature_maps_of_ablations(switches):
    model = DFPIR(tiny_config(**switches))
    analysis = Analysis(model, load_config(ROOT / "configs" / "demo.yaml", TINY),
                        torch.device("cpu"))
    result = compute_features(analysis, torch.rand(3, 16, 24), "derain", ["dgpb_level2"])
    maps = result.blocks["dgpb_level2"]
    if not switches.get("dgcpm", True):
        assert maps.notes == {"dgcpm": "off: Q = F"}
        np.testing.assert_array_equal(maps.maps["dgcpm"], maps.maps["input"])
    else:
        assert maps.notes == {"caapm": "off: F_a = Q"}
        np.testing.assert_array_equal(maps.maps["caapm"], maps.maps["dgcpm"])


# ------------------------------------------------------------------ grid and the script


def test_grid(analysis, tmp_path):
    rows = compute_grid(analysis, sets=["builtin_denoise_25", "builtin_lowlight"])
    assert [r.task for r in rows] == ["denoise_25", "lowlight"]
    assert rows[0].restored.shape == rows[0].clean.shape
    paths = save_grid(rows, tmp_path)
    _png_ok(paths["png"])
    assert [r["set"] for r in _rows(paths["csv"])] == ["builtin_denoise_25", "builtin_lowlight"]


def test_script_all_figures(checkpoint, tmp_path, capsys):
    out = tmp_path / "figures"
    code = _script().main(["all", "--ckpt", str(checkpoint), "--out", str(out), "--device",
                           "cpu", "--crops", "1", "--crop-size", "16", "--block", "all",
                           "--set", "data.builtin.tasks=[derain, dehaze, lowlight]"])
    assert code == 0, capsys.readouterr().err
    for name in ("tsne", "shuffle", "features", "grid"):
        _png_ok(out / f"{name}.png")
    assert (out / "tsne_summary.csv").is_file() and (out / "shuffle_differ.csv").is_file()
    assert len(_rows(out / "grid.csv")) == 3
    assert "silhouette" in capsys.readouterr().out
    from dfpir.cli.visualize import FIGURE_FILES  # the names checked before work are the files

    assert {p.name for p in out.iterdir()} == {f for v in FIGURE_FILES.values() for f in v}


def test_script_reports_errors(checkpoint, tmp_path, capsys):
    main = _script().main
    assert main(["features", "--ckpt", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["features", "--ckpt", str(checkpoint), "--out", str(tmp_path),
                 "--block", "dgpb_level9"]) == 2
    assert "no DGPB named" in capsys.readouterr().err


def test_release_checkpoint_with_a_config(analysis, checkpoint, tmp_path):
    """A release checkpoint has no config: --config and --set supply it. A --config or --set
    that disagrees with the architecture stored in one of ours is an error naming the keys,
    unless override_arch."""
    from dfpir.models.checkpoint import release_checkpoint

    path = tmp_path / "release.pth"
    torch.save(release_checkpoint(analysis.model), path)
    loaded = load_analysis(path, ROOT / "configs" / "demo.yaml", TINY, "cpu")
    assert loaded.layout == "dfpir_release"
    ours, theirs = compute_shuffle(analysis), compute_shuffle(loaded)
    for block in ours.orders:
        np.testing.assert_array_equal(ours.orders[block], theirs.orders[block])
    with pytest.raises(ConfigError, match=r"model\.gamma=0\.5.*--override-arch"):
        load_analysis(checkpoint, ROOT / "configs" / "demo.yaml", [*TINY, "model.gamma=0.5"],
                      "cpu")
    other = load_analysis(checkpoint, ROOT / "configs" / "demo.yaml",
                          [*TINY, "model.gamma=0.5"], "cpu", override_arch=True)
    assert other.model.config.gamma == 0.5


def test_restormer_baseline(tmp_path):
    """No DGPB: t-SNE falls back to the latent, the DGPB figures say why they cannot be drawn."""
    model = DFPIR(tiny_config(dgcpm=False, caapm=False, ca=False))
    cfg = load_config(ROOT / "configs" / "demo.yaml", TINY)
    analysis = Analysis(model, cfg, torch.device("cpu"))
    result = compute_tsne(analysis, crops=1, crop_size=16, sets=["builtin_derain",
                                                                 "builtin_dehaze"])
    assert result.layer == "latent" and result.embedding.shape == (8, 2)
    with pytest.raises(ValueError, match="no DGPB"):
        compute_features(analysis, torch.rand(3, 16, 16), "derain", [])
    with pytest.raises(ValueError, match="no DGPB"):
        compute_shuffle(analysis)
    assert len(compute_grid(analysis, sets=["builtin_derain"])) == 1
