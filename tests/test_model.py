"""The DFPIR model: sizes, shapes, prompts, gamma, ablation switches and gradient flow."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from dfpir.models import CAAPM, DFPIR, DGCPM, TABLE3_ROWS, DFPIRConfig, build_model, keep_top_k
from dfpir.models.restormer import LayerNorm


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_parameter_counts_match_the_release():
    assert n_params(DFPIR()) == 31_104_761
    assert n_params(DFPIR(DFPIRConfig.restormer())) == 26_126_644


@pytest.mark.parametrize("size", [(17, 23), (8, 8), (1, 5), (33, 64)])
def test_any_size_comes_back_at_its_size(tiny, size):
    model = DFPIR(tiny).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x, torch.randn(2, 512))
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_padding_does_not_leak_into_the_crop(tiny):
    """An image already a multiple of 8 gives the same result as through the padding path
    when the padded part is cropped away, i.e. padding only appends rows/columns."""
    model = DFPIR(tiny).eval()
    x = torch.rand(1, 3, 16, 16)
    p = torch.randn(1, 512)
    with torch.no_grad():
        y = model(x, p)
        y_again = model(x.clone(), p)
    torch.testing.assert_close(y, y_again)


def test_per_sample_prompts_in_one_batch(tiny):
    model = DFPIR(tiny).eval()
    x = torch.rand(1, 3, 16, 16).repeat(3, 1, 1, 1)
    prompts = torch.randn(3, 512)
    with torch.no_grad():
        batched = model(x, prompts)
        single = torch.cat([model(x[i : i + 1], prompts[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
    # different prompts give different outputs for the same image
    assert (batched[0] - batched[1]).abs().max() > 1e-6


def test_one_prompt_broadcasts_over_the_batch(tiny):
    model = DFPIR(tiny).eval()
    x = torch.rand(2, 3, 16, 16)
    p = torch.randn(512)
    with torch.no_grad():
        torch.testing.assert_close(model(x, p), model(x, p.expand(2, 512)))


def test_prompt_errors(tiny):
    model = DFPIR(tiny)
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="needs a prompt"):
        model(x)
    with pytest.raises(ValueError, match="3 prompts for a batch of 2"):
        model(x, torch.randn(3, 512))
    with pytest.raises(ValueError, match="shape"):
        model(x, torch.randn(2, 77))


def test_baseline_ignores_prompt():
    model = DFPIR(tiny_config(ca=False, dgcpm=False, caapm=False)).eval()
    assert model.dgpbs() == {}
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x, torch.randn(1, 512)))


def test_keep_top_k_keeps_k_per_row():
    logits = torch.randn(2, 3, 10, 10)
    masked = keep_top_k(logits, 4)
    assert (torch.isfinite(masked).sum(-1) == 4).all()
    kept = torch.where(torch.isfinite(masked), masked, torch.full_like(masked, -1e9))
    # the kept ones are the largest
    assert torch.equal(kept.topk(4, -1).values, logits.topk(4, -1).values)


def test_caapm_top_k_follows_gamma():
    assert CAAPM(96, 2, gamma=0.9).top_k == 43  # int(0.9 * 48), the release's 43 of 48
    assert CAAPM(96, 2, gamma=0.5).top_k == 24
    assert CAAPM(96, 2, gamma=1.0).top_k == 48
    assert CAAPM(96, 2, gamma=0.5, masked=False).top_k == 48


def test_gamma_one_equals_no_masking():
    torch.manual_seed(1)
    masked = DFPIR(tiny_config(gamma=1.0)).eval()
    plain = DFPIR(tiny_config(caapm=False, ca=True)).eval()
    plain.load_state_dict(masked.state_dict())
    x, p = torch.rand(2, 3, 16, 24), torch.randn(2, 512)
    with torch.no_grad():
        torch.testing.assert_close(masked(x, p), plain(x, p), rtol=0, atol=0)
    # and gamma < 1 does change the result
    lower = DFPIR(tiny_config(gamma=0.5)).eval()
    lower.load_state_dict(masked.state_dict())
    with torch.no_grad():
        assert (lower(x, p) - masked(x, p)).abs().max() > 1e-6


@pytest.mark.parametrize("row", list(TABLE3_ROWS))
def test_table3_rows_build_and_run(row):
    cfg = DFPIRConfig.table3_row(row, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                                 heads=[1, 2, 2, 4])
    model = DFPIR(cfg)
    ca, dgcpm, caapm = TABLE3_ROWS[row]
    blocks = model.dgpbs()
    assert len(blocks) == (0 if row == "baseline" else 4)
    for block in blocks.values():
        assert (block.dgcpm is not None) == dgcpm
        assert (block.caapm is not None) == (ca or caapm)
        if block.caapm is not None:
            assert block.caapm.masked == caapm
    y = model(torch.rand(2, 3, 12, 20), torch.randn(2, 512))
    y.mean().backward()
    assert y.shape == (2, 3, 12, 20)


def test_table3_row_rejects_unknown_names():
    with pytest.raises(ValueError, match="expected one of"):
        DFPIRConfig.table3_row("d")


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(gamma=0.0), "gamma"),
        (dict(gamma=1.5), "gamma"),
        (dict(heads=[3, 2, 2, 4]), "divisible"),
        (dict(num_blocks=[1, 1, 1]), "4 entries"),
        (dict(norm="Batch"), "norm"),
    ],
)
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**bad)


def test_build_model_rejects_unknown_keys():
    with pytest.raises(ValueError, match="gama"):
        build_model({"gama": 0.9})


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    x, p = torch.rand(2, 3, 16, 16), torch.randn(2, 512)
    model(x, p).square().mean().backward()
    return {n: q.grad for n, q in model.named_parameters()}


def test_gradients_reach_everything_but_the_release_dgm(tiny):
    g = grads(DFPIR(tiny))
    no_grad = sorted(n for n, v in g.items() if v is None or not v.abs().sum() > 0)
    dgm = sorted(n for n in g if ".dgm." in n)
    assert dgm and no_grad == dgm


def test_learnable_dgm_receives_gradient_and_keeps_the_forward():
    torch.manual_seed(3)
    release = DFPIR(tiny_config()).eval()
    learnable = DFPIR(tiny_config(learnable_dgm=True)).eval()
    learnable.load_state_dict(release.state_dict())
    x, p = torch.rand(2, 3, 16, 16), torch.randn(2, 512)
    with torch.no_grad():
        torch.testing.assert_close(learnable(x, p), release(x, p), rtol=1e-5, atol=1e-6)
    g = grads(learnable.train())
    assert all(v is not None and v.abs().sum() > 0 for v in g.values())


def test_dgcpm_reorders_by_descending_score():
    dgcpm = DGCPM(2)
    scores = torch.tensor([[0.1, 3.0, -1.0, 2.0]])
    _, order = dgcpm.channel_order(scores)
    assert order.tolist() == [[1, 3, 0, 2]]
    # with identity 1x1 convs, the output is the reordered input's first half summed as set up
    with torch.no_grad():
        dgcpm.expand.weight.copy_(torch.tensor([[1.0, 0], [0, 1], [2, 0], [0, 2]])[..., None, None])
        dgcpm.expand.bias.zero_()
        dgcpm.reduce.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0]])[..., None, None])
        dgcpm.reduce.bias.zero_()
    x = torch.tensor([[5.0], [7.0]]).reshape(1, 2, 1, 1)
    # expanded channels [5, 7, 10, 14] reordered [7, 14, 5, 10]; reduce keeps the first two
    assert dgcpm(x, scores).flatten().tolist() == [7.0, 14.0]


def test_layernorm_matches_the_release_formula():
    x = torch.randn(2, 6, 5, 7)
    ln = LayerNorm(6)
    with torch.no_grad():
        ln.body.weight.uniform_()
        ln.body.bias.uniform_()
    t = x.permute(0, 2, 3, 1)
    mu, var = t.mean(-1, keepdim=True), t.var(-1, keepdim=True, unbiased=False)
    ref = ((t - mu) / torch.sqrt(var + 1e-5) * ln.body.weight + ln.body.bias).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref, rtol=1e-5, atol=1e-5)
    bias_free = LayerNorm(6, "BiasFree")
    ref_bf = (t / torch.sqrt(var + 1e-5)).permute(0, 3, 1, 2)
    torch.testing.assert_close(bias_free(x), ref_bf, rtol=1e-5, atol=1e-5)


def test_channels_last_gives_the_same_output(tiny):
    model = DFPIR(tiny).eval()
    x, p = torch.rand(2, 3, 16, 24), torch.randn(2, 512)
    with torch.no_grad():
        ref = model(x, p)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last), p)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("learnable", [False, True])
def test_fused_dgcpm_equals_the_release_computation(learnable):
    dgcpm = DGCPM(12, learnable_dgm=learnable)
    x = torch.randn(3, 12, 9, 14)
    scores = torch.randn(3, 24, requires_grad=True)
    fused, reference = dgcpm(x, scores), dgcpm.forward_reference(x, scores)
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
    inputs = [*dgcpm.parameters(), x.requires_grad_()] + ([scores] if learnable else [])
    g_fused = torch.autograd.grad(dgcpm(x, scores).square().sum(), inputs)
    g_ref = torch.autograd.grad(dgcpm.forward_reference(x, scores).square().sum(), inputs)
    for a, b in zip(g_fused, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    channels_last = x.detach().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(dgcpm(channels_last, scores), reference, rtol=1e-5, atol=1e-5)
