"""The CPU fast paths of the model compute the release's function: fused attention, padded
GDFN, 1x1 convolutions as GEMMs and channels_last maps, against the step-by-step forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from dfpir.models import CAAPM, DFPIR
from dfpir.models.restormer import GDFN, MDTA, head_attention_logits, pointwise, sum_of_squares


def _randomise(module: torch.nn.Module) -> None:
    """Move the scalar parameters off their initial values so the tests see them act."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "temperature" in name or name.endswith("scale") or "body" in name:
                p.add_(0.3 * torch.randn_like(p))


def _formats(x: torch.Tensor) -> list[torch.Tensor]:
    return [x, x.contiguous(memory_format=torch.channels_last)]


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_mdta_matches_the_reference(heads, one_thread):
    mdta = MDTA(16, heads)
    _randomise(mdta)
    x = torch.randn(2, 16, 12, 10)
    for inp in _formats(x):
        inp = inp.clone().requires_grad_(True)
        fast, ref = mdta(inp), mdta.forward_reference(inp)
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
        g_fast = torch.autograd.grad(fast.square().sum(), [inp, mdta.temperature])
        g_ref = torch.autograd.grad(ref.square().sum(), [inp, mdta.temperature])
        for a, b in zip(g_fast, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("masked", [True, False])
def test_caapm_matches_the_reference(masked, one_thread):
    caapm = CAAPM(16, 2, gamma=0.7, masked=masked)
    _randomise(caapm)
    query, feature = torch.randn(2, 16, 9, 11), torch.randn(2, 16, 9, 11)
    for q, f in zip(_formats(query), _formats(feature)):
        torch.testing.assert_close(caapm(q, f), caapm.forward_reference(q, f),
                                   rtol=1e-5, atol=1e-5)


def test_attention_logits_keep_f_normalize_on_zero_rows():
    q = torch.randn(1, 4, 3, 5)
    q[:, 1] = 0.0  # F.normalize maps a zero row to zeros, not NaN
    q.requires_grad_(True)
    logits = head_attention_logits(q, q, 2, torch.ones(2, 1, 1))
    assert torch.isfinite(logits).all()
    assert (logits[0, 0, 1] == 0).all()
    (grad,) = torch.autograd.grad(logits.sum(), q)  # the norm's sqrt at 0 must not give NaN
    assert torch.isfinite(grad).all()


#: fp32's unit roundoff: every tolerance below is a multiple of it derived from the operation.
U32 = 2.0**-24


def _long_rows(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return tuple((torch.randn(1, 8, 1, n) + 1.0).contiguous(memory_format=torch.channels_last)
                 for _ in range(2))


def test_attention_norms_stay_accurate_over_long_channels_last_rows():
    """A blocked/pairwise sum of n squares is off by at most ~log2(n) u (relative; the sqrt
    halves it). ``vector_norm`` over a strided channels_last row added them one by one and lost
    6e-5 at n = 4e5 (3e-4 in the logits at 1280x720), 40x this bound."""
    n = 400_000
    q, _ = _long_rows(n)
    qf = q.flatten(2)
    assert qf.stride(-1) != 1  # the strided rows of a channels_last map
    ours = sum_of_squares(qf).double()
    exact = qf.double().square().sum(-1)
    bound = 2 * math.log2(n) * U32  # margin 2 over the pairwise bound
    assert ((ours - exact) / exact).abs().max() < bound


def test_attention_logits_stay_accurate_over_long_channels_last_rows():
    """The logits are cosines of n-long rows. A fp32 dot product of length n carries a rounding
    error of about sqrt(n) u relative to |q||k| (random rounding; worst-case n u), whatever the
    BLAS kernel's summation order (AVX-512 and AVX2 kernels differ here: 3e-7 vs 1e-5 seen at
    n = 4e5); the norms add ~log2(n) u. The bound is 4 sqrt(n) u (1.5e-4 at n = 4e5)."""
    n, heads = 400_000, 2
    q, k = _long_rows(n)
    logits = head_attention_logits(q, k, heads, torch.ones(heads, 1, 1))
    q64, k64 = (t.double().reshape(1, heads, 4, n) for t in (q, k))
    exact = F.normalize(q64, dim=-1) @ F.normalize(k64, dim=-1).transpose(-2, -1)
    assert (logits.double() - exact).abs().max() < 4 * math.sqrt(n) * U32


@pytest.mark.parametrize("bias", [False, True])
def test_padded_gdfn_equals_the_plain_one(bias, one_thread):
    gdfn = GDFN(24, 2.66, bias)  # hidden 63: padded to 64 on the CPU channels_last path
    assert gdfn.project_out.in_channels % 16
    x = torch.randn(2, 24, 7, 9)
    plain = gdfn(x)  # NCHW: the unpadded computation
    inp = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    padded = gdfn(inp)
    torch.testing.assert_close(padded, plain, rtol=1e-5, atol=1e-5)
    padded.sum().backward()  # gradients reach the real parameters through the padding
    assert gdfn.project_in.weight.grad is not None and gdfn.dwconv.weight.grad is not None
    with torch.no_grad():
        torch.testing.assert_close(gdfn(inp), plain, rtol=1e-5, atol=1e-5)


def test_pointwise_is_the_convolution():
    conv = torch.nn.Conv2d(6, 10, 1, bias=True)
    x = torch.randn(2, 6, 5, 4)
    for inp in _formats(x):
        out = pointwise(conv, inp)
        torch.testing.assert_close(out, conv(x), rtol=1e-5, atol=1e-5)
        assert out.is_contiguous(memory_format=torch.channels_last) == (inp is not x)


def test_model_output_keeps_the_input_format_and_values(one_thread):
    model = DFPIR(tiny_config()).eval()
    _randomise(model)
    x, prompt = torch.rand(2, 3, 20, 13), torch.randn(2, 512)
    with torch.no_grad():
        plain = model(x, prompt)
        cl = model(x.contiguous(memory_format=torch.channels_last), prompt)
    assert plain.is_contiguous()
    assert cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, plain)
