"""Precision may change values by rounding, never a choice the network makes: the DGCPM channel
orders under bf16/fp16 autocast equal fp32's, large images stay finite under fp16, and the
orders a checkpoint records are checked when it is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from dfpir.config import load_config
from dfpir.device import autocast_context
from dfpir.loading import load_experiment
from dfpir.models import DFPIR, DGCPM, DFPIRConfig
from dfpir.models.orders import check_order_record, check_prompt_record, order_record
from dfpir.models.precision import full_fp32, set_backend_precision
from dfpir.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
#: unit roundoffs of the 16-bit formats
UNIT = {"fp16": 2.0**-11, "bf16": 2.0**-8}


def _recorded_orders(model: DFPIR, image: torch.Tensor, prompt: torch.Tensor, amp: str
                     ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The channel order and straight-through weights every DGCPM used in one forward pass."""
    orders, weights = [], []
    order_of, weights_of = DGCPM.channel_order, DGCPM.channel_weights

    def order(self, scores):
        values, index = order_of(self, scores)
        orders.append(index.clone())
        return values, index

    def weight(self, values):
        w = weights_of(self, values)
        weights.append(w.detach().clone())
        return w

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DGCPM, "channel_order", order)
        mp.setattr(DGCPM, "channel_weights", weight)
        with torch.no_grad(), autocast_context(image.device, amp):
            model(image, prompt)
    return orders, weights


def test_channel_orders_do_not_change_under_autocast(one_thread):
    """The full model's channel widths (2C = 96 ... 768), four random unit prompts: bf16 used
    to change 10-647 positions per DGPB; now every order is fp32's, position by position."""
    model = DFPIR(DFPIRConfig(num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                              learnable_dgm=True)).eval()
    image = torch.rand(4, 3, 16, 16)
    prompt = F.normalize(torch.randn(4, 512), dim=-1)
    ref_orders, ref_weights = _recorded_orders(model, image, prompt, "none")
    assert [o.shape[-1] for o in ref_orders] == [768, 384, 192, 96]
    for amp in ("bf16", "fp16"):
        orders, weights = _recorded_orders(model, image, prompt, amp)
        for ref, got in zip(ref_orders, orders, strict=True):
            assert torch.equal(ref, got), amp
        for w in weights:  # the straight-through weights are exactly 1 in every precision
            assert w.dtype == torch.float32 and bool((w == 1).all()), amp
    assert all(bool((w == 1).all()) for w in ref_weights)


def test_full_fp32_turns_tf32_off_and_back():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark)
    try:
        set_backend_precision(tf32=True, cudnn_benchmark=True)
        assert matmul.allow_tf32 and cudnn.allow_tf32 and cudnn.benchmark
        with full_fp32("cuda"):
            assert not matmul.allow_tf32
            assert not torch.is_autocast_enabled("cuda")
        assert matmul.allow_tf32
        set_backend_precision(tf32=False, cudnn_benchmark=False)
        assert not (matmul.allow_tf32 or cudnn.allow_tf32 or cudnn.benchmark)
    finally:
        matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark = before


@pytest.fixture(scope="module")
def hd_reference() -> tuple[DFPIR, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The demo-size model (dim 16), a 1280x720 image, a prompt and the fp32 output."""
    torch.manual_seed(0)
    model = DFPIR(tiny_config(dim=16, heads=[1, 2, 4, 8])).eval()
    with torch.no_grad():  # move the scalars off their initial values, as a trained model has
        for name, p in model.named_parameters():
            if "temperature" in name or name.endswith("scale") or "body" in name:
                p.add_(0.3 * torch.randn_like(p))
    image = torch.rand(1, 3, 720, 1280)
    prompt = F.normalize(torch.randn(1, 512), dim=-1)
    with torch.no_grad():
        return model, image, prompt, model(image, prompt)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_a_1280x720_image_stays_finite_and_close_under_16_bit_autocast(amp, hd_reference):
    """The raw attention dot products over 921,600 pixels overflowed fp16 (inf pixels). Now the
    output is finite and its RMS difference from fp32 is within 32 unit roundoffs of the
    format, relative to the output's RMS (seen: about 3 for fp16, 6 for bf16). An overflow or
    a different channel order is far outside that."""
    model, image, prompt, ref = hd_reference
    with torch.no_grad(), autocast_context(image.device, amp):
        out = model(image, prompt).float()
    assert torch.isfinite(out).all()
    rms = (out - ref).square().mean().sqrt().item()
    assert rms <= 32 * UNIT[amp] * ref.square().mean().sqrt().item()


def test_order_record_notes_changed_orders_and_prompts():
    model = DFPIR(tiny_config()).eval()
    names = ["derain", "dehaze"]
    embeddings = F.normalize(torch.randn(2, 512), dim=-1)
    record = order_record(model, names, embeddings)
    assert set(record["orders"]) == set(model.dgpbs())
    assert check_order_record(model, record) == []
    assert check_prompt_record(model, record, dict(zip(names, embeddings))) == []
    # another encoder build: the embeddings moved; a large move changes the orders too
    moved = {"derain": F.normalize(torch.randn(512), dim=0), "dehaze": embeddings[1]}
    (note,) = check_prompt_record(model, record, moved)
    assert "differ from those recorded" in note and "change the channel order" in note
    # an edited record: the top two of a prompt exchanged, far apart in score: loud
    block = next(iter(record["orders"]))
    edited = {**record, "orders": {k: v.clone() for k, v in record["orders"].items()}}
    edited["orders"][block][1, [0, 1]] = edited["orders"][block][1, [1, 0]]
    (note,) = check_order_record(model, edited)
    assert note.startswith(f"warning: {block}:") and "do not match" in note
    assert "dehaze" in note and "derain" not in note
    # a device that rounds a near-tie the other way: two scores made exactly equal, their
    # recorded positions exchanged: a quiet note, the near-tie named
    order = record["orders"][block][1]
    i, j = int(order[3]), int(order[4])
    with torch.no_grad():
        dgm = model.dgpbs()[block].dgm
        dgm.fc2.weight[j] = dgm.fc2.weight[i]
        dgm.fc2.bias[j] = dgm.fc2.bias[i]
    tied = order_record(model, names, embeddings)
    row = tied["orders"][block][1]
    a, b = int((row == i).nonzero()), int((row == j).nonzero())
    row[[a, b]] = row[[b, a]]
    (note,) = check_order_record(model, tied)
    assert note.startswith(f"{block}:") and "near-tie" in note and "dehaze" in note


def test_training_records_orders_and_loading_checks_them(tmp_path, caplog):
    tiny = ["model.dim=8", "model.num_blocks=[1, 1, 1, 1]", "model.num_refinement_blocks=1",
            "model.heads=[1, 2, 2, 4]", "data.builtin.tasks=[derain, dehaze]",
            "data.builtin.train_images=[astronaut]", "data.builtin.test_images=[coffee]",
            "data.builtin.repeat=2", "data.builtin.test_max_side=32", "classifier.enabled=false",
            "train.stages=[{name: a, epochs: 1, lr: 0.001, patch_size: 16, batch_size: 2, "
            "max_iters: 1}]", "train.save_every_iters=0", "train.sample_images=0"]
    trainer = Trainer(load_config(ROOT / "configs" / "demo.yaml", tiny), tmp_path)
    trainer.run()
    path = tmp_path / "checkpoints" / "latest.pt"
    state = torch.load(path, weights_only=True)
    record = state["channel_orders"]
    assert record["names"] == trainer.bank.names
    assert torch.equal(record["embeddings"], trainer.bank.embeddings.float().cpu())
    assert load_experiment(path).notes == []
    block = next(iter(record["orders"]))
    record["orders"][block][0] = record["orders"][block][0].flip(0)
    torch.save(state, path)
    notes = load_experiment(path).notes  # all reversed: no rounding gives that, loudly
    assert len(notes) == 1 and notes[0].startswith(f"warning: {block}")
