"""Training losses: the paper's mean L1, the squared error, the demo's PSNR loss and the opt-in
input-normalised loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dfpir.config import ExperimentConfig
from dfpir.train.losses import (
    compute_loss,
    input_normalised_loss,
    per_sample_loss,
    training_loss,
)

ROOT = Path(__file__).resolve().parents[1]


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(4, 3, 8, 8, generator=gen)
    # item 0 badly degraded (like low light), items 1-3 lightly (like rain)
    scale = torch.tensor([0.5, 0.05, 0.05, 0.05]).view(4, 1, 1, 1)
    degraded = clean + scale * torch.randn(4, 3, 8, 8, generator=gen)
    restored = clean + 0.5 * (degraded - clean)  # halves every item's error
    return restored, clean, degraded


def test_paper_default_is_plain_mean_l1():
    assert ExperimentConfig().train.loss_weighting == "none"
    restored, clean, degraded = _batch()
    loss = training_loss("l1", "none", restored, clean, degraded)
    assert torch.allclose(loss, (restored - clean).abs().mean())


def test_per_sample_loss_shape_and_values():
    restored, clean, _ = _batch()
    per = per_sample_loss("l1", restored, clean)
    assert per.shape == (4,)
    assert torch.allclose(per.mean(), (restored - clean).abs().mean())
    assert torch.all(per_sample_loss("charbonnier", restored, clean) >= per)


def test_input_normalised_loss_weighs_each_item_by_its_input_error():
    restored, clean, degraded = _batch()
    # every item halves its input error, so every ratio is 0.5 whatever the degradation strength
    loss = input_normalised_loss("l1", restored, clean, degraded)
    assert loss.item() == pytest.approx(0.5, abs=1e-5)
    # while the plain mean is dominated by the badly degraded item
    per = per_sample_loss("l1", restored, clean)
    assert per[0] > 5 * per[1:].max()


def test_input_normalised_loss_gradient_flows_only_through_the_output():
    restored, clean, degraded = _batch()
    restored.requires_grad_(True)
    degraded.requires_grad_(True)
    training_loss("l1", "input", restored, clean, degraded).backward()
    assert restored.grad is not None and restored.grad.abs().sum() > 0
    assert degraded.grad is None
    # the lightly degraded items get the larger gradients
    per_item = restored.grad.abs().flatten(1).sum(1)
    assert per_item[1:].min() > 5 * per_item[0]


def test_mse_is_the_mean_squared_error():
    restored, clean, degraded = _batch()
    loss = training_loss("mse", "none", restored, clean, degraded)
    assert torch.allclose(loss, torch.nn.functional.mse_loss(restored, clean))


def test_input_normalised_mse_is_the_mean_of_the_mse_ratios():
    # mse ratio = 10^(-gain/10): the loss ranks models by their per-item PSNR gains
    restored, clean, degraded = _batch()
    loss = input_normalised_loss("mse", restored, clean, degraded)
    assert loss.item() == pytest.approx(0.25, abs=1e-5)  # every item's error halved: -6.02 dB
    # the floor is in the loss's units: 1e-4 for mse (0.01 squared), so a light error still counts
    light = clean + 0.02
    assert input_normalised_loss("mse", clean + 0.01, clean, light).item() == pytest.approx(
        0.25, rel=1e-3)


def test_clean_input_is_floored_not_divided_by_zero():
    clean = torch.rand(2, 3, 4, 4)
    loss = input_normalised_loss("l1", clean + 0.01, clean, clean.clone())
    assert torch.isfinite(loss)


def test_psnr_loss_is_minus_each_items_psnr():
    restored, clean, _ = _batch()
    per = per_sample_loss("psnr", restored, clean, floor=1e-12)
    squared = ((restored.double() - clean.double()) ** 2).flatten(1).mean(1)
    expected = -10 * torch.log10(1 / squared)
    # fp32 squares summed over 192 values: relative error ~1e-6, i.e. ~5e-6 dB; 1e-4 dB is safe
    assert torch.allclose(per.double(), expected, atol=1e-4, rtol=0)
    assert torch.allclose(compute_loss("psnr", restored, clean, 1e-12), per.mean())


def test_psnr_loss_weighs_each_item_by_its_own_error():
    # the gradient of 10 log10(mse) is the squared error's divided by mse: an item with 10x
    # less error gets a gradient 10x larger per unit of error, so every item counts per dB
    restored, clean, degraded = _batch()
    restored.requires_grad_(True)
    training_loss("psnr", "none", restored, clean, degraded, psnr_floor=1e-12).backward()
    error = (restored - clean).detach().flatten(1)
    grad = restored.grad.flatten(1)
    squared = (error.double() ** 2).mean(1)
    # d/d(restored) = (10 / ln 10) / N * 2 error / (P mse): the ratio grad / error is 1 / mse
    ratio = (grad.double() / error.double()).mean(1)
    expected = (10 / torch.log(torch.tensor(10.0, dtype=torch.float64)) / 4 * 2
                / error.shape[1] / squared)
    assert torch.allclose(ratio, expected, rtol=1e-4)
    assert ratio[1:].min() > 50 * ratio[0]  # item 0's error is 10x the others'


def test_psnr_loss_floor_caps_a_perfect_crop():
    clean = torch.rand(2, 3, 4, 4)
    loss = per_sample_loss("psnr", clean.clone(), clean, floor=1e-4)
    assert torch.allclose(loss, torch.full((2,), -40.0))


def test_psnr_loss_config_is_checked():
    from dfpir.config import TrainConfig

    with pytest.raises(ValueError, match="loss_weighting must be 'none' with loss 'psnr'"):
        TrainConfig(loss="psnr", loss_weighting="input")
    for floor in (0.0, 1e-300, 2.0):  # 1e-300 rounds to 0 in fp32: log10(0) = -inf
        with pytest.raises(ValueError, match=r"psnr_loss_floor must be a number in \[1e-10, 1\]"):
            TrainConfig(loss="psnr", psnr_loss_floor=floor)
    perfect = torch.rand(2, 3, 8, 8)  # the smallest floor allowed keeps a perfect crop finite
    assert torch.isfinite(per_sample_loss("psnr", perfect, perfect, 1e-10)).all()
    restored, clean, degraded = _batch()
    with pytest.raises(ValueError, match="not 'psnr'"):
        input_normalised_loss("psnr", restored, clean, degraded)


def test_unknown_weighting_or_loss_is_refused():
    restored, clean, degraded = _batch()
    with pytest.raises(ValueError, match="loss_weighting"):
        training_loss("l1", "task", restored, clean, degraded)
    with pytest.raises(ValueError, match="train.loss"):
        training_loss("l2", "none", restored, clean, degraded)


def test_trainer_uses_the_configured_weighting(tmp_path, monkeypatch):
    from test_train import TINY

    from dfpir.config import load_config
    from dfpir.train import Trainer

    class OneStep(Exception):
        """Ends the run after the first step (not a stop request: no checkpoint, no error)."""

    first: dict[str, float] = {}
    original = Trainer._step

    for loss, weighting in (("mse", "none"), ("mse", "input"), ("psnr", "none")):
        def record(self, *args, _w=f"{loss}_{weighting}"):
            first.setdefault(_w, original(self, *args))
            raise OneStep  # one step is enough

        monkeypatch.setattr(Trainer, "_step", record)
        cfg = load_config(ROOT / "configs" / "demo.yaml",
                          TINY + [f"train.loss={loss}", f"train.loss_weighting={weighting}"])
        with pytest.raises(OneStep):
            Trainer(cfg, tmp_path / f"{loss}_{weighting}").run()
    # minus the mean PSNR of the crops: the degraded inputs of the mix are at 12-35 dB, and the
    # untrained network's outputs are of that order (floor: -40)
    assert -40 <= first["psnr_none"] < -5
    # same seed, same model and batch: the normalised loss divides each crop's error by its
    # input's error, which is under 0.2 for rain and haze, so it is over 5 times the plain one
    assert 0 < first["mse_none"] < 0.3
    assert first["mse_input"] > 5 * first["mse_none"]
