"""Prompt registry and encoders."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from dfpir.prompts import (
    DEGRADATIONS,
    ClipEncoder,
    FileEncoder,
    HashedEncoder,
    PromptBank,
    PromptConfig,
    PromptError,
    build_encoder,
    prompt_sentence,
    save_prompt_table,
)


def test_registry_holds_the_release_sentences():
    assert [d.task_id for d in DEGRADATIONS.values()] == list(range(7))
    assert prompt_sentence("denoise_25") == "Gaussian noise with a standard deviation of 25"
    assert prompt_sentence("dehaze") == "Hazy degradation with normal haze"
    assert prompt_sentence("derain", "simple") == "Rain"
    with pytest.raises(PromptError, match="valid names: denoise_15"):
        prompt_sentence("desnow")
    with pytest.raises(PromptError, match="no simple prompt"):
        prompt_sentence("deblur", "simple")


def test_hashed_encoder_is_deterministic_across_processes():
    sentence = prompt_sentence("derain")
    here = HashedEncoder().encode([sentence])[0]
    code = (
        "from dfpir.prompts import HashedEncoder;"
        f"print(HashedEncoder().encode([{sentence!r}])[0].tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    there = torch.tensor(eval(out.stdout))
    assert torch.equal(here, there)
    other = HashedEncoder().encode([prompt_sentence("dehaze")])[0]
    assert not torch.allclose(here, other)


def test_clip_without_weights_fails_at_once_with_advice(tmp_path):
    with pytest.raises(PromptError) as err:
        ClipEncoder(weights=tmp_path / "missing.bin")
    message = str(err.value)
    assert "missing.bin" in message and "hashed" in message and "export_prompts" in message


def test_clip_encoder_runs_on_random_weights():
    """The real open_clip text tower (random weights, offline): shape, caching, determinism."""
    enc = ClipEncoder(load_weights=False, precision="fp32", device="cpu")
    a = enc.encode(["Rain degradation with rain lines", "Lowlight degradation"])
    b = enc.encode(["Lowlight degradation"])
    assert a.shape == (2, 512) and a.dtype == torch.float32
    assert torch.equal(a[1], b[0])


def test_file_encoder_round_trip(tmp_path):
    path = tmp_path / "table.pt"
    sentences = [prompt_sentence(n) for n in DEGRADATIONS]
    save_prompt_table(HashedEncoder(), sentences, path)
    enc = build_encoder(PromptConfig(encoder="file", table=str(path)))
    torch.testing.assert_close(enc.encode(sentences[:2]), HashedEncoder().encode(sentences[:2]))
    with pytest.raises(PromptError, match="no embedding for"):
        enc.encode(["Snow"])
    with pytest.raises(PromptError, match="does not exist"):
        FileEncoder(tmp_path / "nope.pt")


def test_prompt_bank_looks_up_per_sample():
    bank = PromptBank(HashedEncoder(), ["derain", "dehaze"])
    batch = bank(["dehaze", "derain", "dehaze"])
    assert batch.shape == (3, 512)
    assert torch.equal(batch[0], batch[2]) and not torch.equal(batch[0], batch[1])
    with pytest.raises(PromptError, match="this bank holds"):
        bank(["deblur"])


def test_unknown_encoder_is_named():
    with pytest.raises(PromptError, match="clipp"):
        build_encoder(PromptConfig(encoder="clipp"))
