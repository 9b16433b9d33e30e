"""Loading the released checkpoints (layout from the shared manifest) and our own."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from dfpir.models import DFPIR, DFPIRConfig
from dfpir.models.checkpoint import (
    CheckpointError,
    load_weights,
    ours_to_release,
    release_checkpoint,
    release_to_ours,
)

MANIFEST = Path(__file__).resolve().parents[1] / "dfpir" / "resources" / "release_layout.json"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def state_from_manifest(keys: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=gen) for k, shape in keys.items()}


@pytest.fixture(scope="module")
def full_models() -> dict[str, DFPIR]:
    return {"dfpir": DFPIR(), "restormer": DFPIR(DFPIRConfig.restormer())}


def test_manifest_sizes(manifest):
    for name in ("dfpir", "restormer"):
        total = sum(math.prod(s) for s in manifest[name]["keys"].values())
        assert total == manifest[name]["num_parameters"]


def test_release_dfpir_checkpoint_loads_every_key(manifest, full_models, tmp_path):
    state = state_from_manifest(manifest["dfpir"]["keys"])
    path = tmp_path / "release.pth"
    torch.save({"epoch": 80, "state_dict": state, "optimizer": {}, "scheduler": {}}, path)
    model = full_models["dfpir"]
    assert load_weights(model, path) == "dfpir_release"
    ours = model.state_dict()
    renamed = release_to_ours(state)
    assert set(renamed) == set(ours)
    for key, value in renamed.items():
        assert torch.equal(ours[key], value), key
    # round trip back to the release names
    assert set(ours_to_release(ours)) == set(manifest["dfpir"]["keys"])


def test_release_restormer_checkpoint_loads_into_baseline(manifest, full_models, tmp_path):
    state = state_from_manifest(manifest["restormer"]["keys"])
    path = tmp_path / "restormer.pth"
    torch.save({"params": state}, path)
    model = full_models["restormer"]
    assert load_weights(model, path) == "restormer_release"
    assert torch.equal(model.state_dict()["output.weight"], state["output.weight"])


def test_restormer_checkpoint_into_dfpir_names_the_missing_keys(manifest, full_models, tmp_path):
    path = tmp_path / "restormer.pth"
    torch.save({"params": state_from_manifest(manifest["restormer"]["keys"])}, path)
    with pytest.raises(CheckpointError, match="missing keys: dgpb_level1") as err:
        load_weights(full_models["dfpir"], path)
    assert "baseline" in str(err.value)


def test_wrong_shapes_and_unexpected_keys_are_named(tmp_path):
    model = DFPIR(tiny_config())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["output.weight"] = torch.zeros(3, 1, 3, 3)
    state["extra.weight"] = torch.zeros(1)
    del state["patch_embed.proj.weight"]
    with pytest.raises(CheckpointError) as err:
        load_weights(model, {"model": state})
    message = str(err.value)
    assert "output.weight (3, 1, 3, 3)" in message
    assert "unexpected keys: extra.weight" in message
    assert "missing keys: patch_embed.proj.weight" in message


def test_missing_and_corrupt_files(tmp_path):
    model = DFPIR(tiny_config())
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(model, tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*bad.pth") as info:
        load_weights(model, bad)
    assert "False" not in str(info.value)  # torch's advice to load it unsafely is not passed on


class _Payload:
    """Stands for any object a pickle may carry besides tensors and plain values."""


def test_refused_pickle_is_named_unsafe_without_torchs_weights_only_false_advice(tmp_path):
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": {}, "extra": _Payload()}, pickled)
    with pytest.raises(CheckpointError) as info:
        load_weights(DFPIR(tiny_config()), pickled)
    message = str(info.value)
    assert "pickled.pth is refused as unsafe" in message and "_Payload" in message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message
    assert "trust" not in message and "add_safe_globals" not in message


def test_export_to_release_layout_and_back(tmp_path):
    model = DFPIR(tiny_config())
    path = tmp_path / "export.pth"
    torch.save(release_checkpoint(model, epoch=3), path)
    again = DFPIR(tiny_config())
    assert load_weights(again, path) == "dfpir_release"
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


def test_module_prefix_from_data_parallel_is_stripped():
    model = DFPIR(tiny_config())
    state = {"module." + k: v for k, v in ours_to_release(model.state_dict()).items()}
    assert load_weights(DFPIR(tiny_config()), {"state_dict": state}) == "dfpir_release"
