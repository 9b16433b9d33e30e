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


# ------------------------------------------------------------------ OpenAI's mixed fp16

# A small CLIP of the same classes as ViT-B/32 (random weights, built in a fraction of a second)
SMALL_CLIP = dict(
    embed_dim=32,
    text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=4, layers=3),
    vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16),
)


def _random_clip_state() -> dict[str, torch.Tensor]:
    """fp32 weights of the small CLIP; LayerNorms perturbed so an fp16 cast of them would show."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", force_quick_gelu=True, **SMALL_CLIP)
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.weight.data = 1 + 0.1 * torch.randn(module.weight.shape, generator=gen)
            module.bias.data = 0.1 * torch.randn(module.bias.shape, generator=gen)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _openai_dtype(model: torch.nn.Module, name: str) -> torch.dtype:
    """The dtype OpenAI's ``clip.model.convert_weights`` leaves parameter ``name`` in: Conv and
    Linear weights/biases, attention in-projections and the text/visual projections in fp16;
    everything else (LayerNorms, embeddings, class embedding, logit scale) in fp32."""
    owner_name, _, attr = name.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    if isinstance(owner, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
        return torch.float16
    if isinstance(owner, torch.nn.MultiheadAttention) and attr in (
        "in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
        "bias_k", "bias_v",
    ):
        return torch.float16
    if attr in ("text_projection", "proj"):
        return torch.float16
    return torch.float32


def _openai_text_embedding(sd: dict[str, torch.Tensor], tokens: torch.Tensor,
                           heads: int) -> torch.Tensor:
    """The text embedding computed step by step by OpenAI's rule from fp32 weights: fp16
    activations and weights, every LayerNorm in fp32 with fp32 weights, sequence-first
    attention through torch's multi-head attention function, as ``clip.model`` calls it."""
    import torch.nn.functional as F

    half = torch.float16

    def w(key: str) -> torch.Tensor:
        return sd[key].to(half)

    def layer_norm(x: torch.Tensor, prefix: str) -> torch.Tensor:
        out = F.layer_norm(x.float(), (x.shape[-1],), sd[f"{prefix}.weight"], sd[f"{prefix}.bias"],
                           1e-5)
        return out.to(half)

    x = sd["token_embedding.weight"][tokens].to(half) + sd["positional_embedding"].to(half)
    length, width = tokens.shape[1], x.shape[-1]
    mask = torch.full((length, length), float("-inf")).triu(1).to(half)
    blocks = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    x = x.transpose(0, 1)  # sequence first, as clip.model
    for i in range(blocks):
        p = f"transformer.resblocks.{i}"
        y = layer_norm(x, f"{p}.ln_1")
        attended, _ = F.multi_head_attention_forward(
            y, y, y, width, heads, w(f"{p}.attn.in_proj_weight"), w(f"{p}.attn.in_proj_bias"),
            None, None, False, 0.0, w(f"{p}.attn.out_proj.weight"), w(f"{p}.attn.out_proj.bias"),
            training=False, need_weights=False, attn_mask=mask,
        )
        x = x + attended
        y = F.linear(layer_norm(x, f"{p}.ln_2"), w(f"{p}.mlp.c_fc.weight"), w(f"{p}.mlp.c_fc.bias"))
        y = y * torch.sigmoid(1.702 * y)  # QuickGELU
        x = x + F.linear(y, w(f"{p}.mlp.c_proj.weight"), w(f"{p}.mlp.c_proj.bias"))
    x = layer_norm(x.transpose(0, 1), "ln_final")
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ w("text_projection")
    return x.float()


def test_clip_fp16_is_openai_mixed_precision(capsys):
    import open_clip

    sd = _random_clip_state()
    enc = ClipEncoder(precision="fp16", device="cpu", state_dict=sd, model_kwargs=SMALL_CLIP)
    assert "on cpu, fp16" in capsys.readouterr().out and "LayerNorms fp32" in enc.describe()["dtype"]
    classes = set()
    for name, param in enc.model.named_parameters():
        assert param.dtype == _openai_dtype(enc.model, name), name
        classes.add(param.dtype)
    assert classes == {torch.float16, torch.float32}
    for module in enc.model.modules():  # every LayerNorm keeps fp32 weights
        if isinstance(module, torch.nn.LayerNorm):
            assert module.weight.dtype == torch.float32 and module.bias.dtype == torch.float32
    sentences = ["Rain degradation with rain lines", "Lowlight degradation"]
    tokens = open_clip.get_tokenizer("ViT-B-32")(sentences)
    expected = _openai_text_embedding(sd, tokens, heads=SMALL_CLIP["text_cfg"]["heads"])
    got = enc.encode(sentences)
    assert got.dtype == torch.float32
    assert torch.equal(got, expected)
    # a plain .half() (fp16 LayerNorms) is not that rule: it moves the embedding
    plain = open_clip.create_model("ViT-B-32", force_quick_gelu=True, **SMALL_CLIP).eval()
    plain.load_state_dict(sd)
    with torch.no_grad():
        halved = plain.half().encode_text(tokens).float()
    assert not torch.equal(halved, expected)


def test_clip_device_choice(monkeypatch):
    from dfpir.prompts import clip_device

    assert clip_device("cpu", "cuda:1").type == "cpu"
    assert clip_device("auto", "cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert clip_device("auto", "cpu").type == "cpu"
    with pytest.raises(PromptError, match="no GPU"):
        clip_device("cuda")
    with pytest.raises(PromptError, match="clip_device"):
        clip_device("tpu")


def test_prompt_table_records_how_it_was_made(tmp_path, capsys):
    path = tmp_path / "table.pt"
    enc = ClipEncoder(precision="fp16", device="cpu", state_dict=_random_clip_state(),
                      model_kwargs=SMALL_CLIP)
    save_prompt_table(enc, ["Lowlight degradation"], path)
    meta = torch.load(path, weights_only=True)["meta"]
    import open_clip

    assert meta["device"] == "cpu" and meta["precision"] == "fp16"
    assert meta["torch"] == torch.__version__ and meta["open_clip"] == open_clip.__version__
    capsys.readouterr()
    FileEncoder(path)
    line = capsys.readouterr().out
    assert "made on cpu" in line and f"torch {torch.__version__}" in line and "LayerNorms fp32" in line


# ------------------------------------------------------------------ prompt sensitivity


def test_prompt_sensitivity_counts_moved_channel_positions():
    from dfpir.analysis import format_sensitivity, prompt_sensitivity
    from dfpir.models import DFPIR, DFPIRConfig

    torch.manual_seed(0)
    model = DFPIR(DFPIRConfig(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                              heads=[1, 2, 2, 4])).eval()
    tasks = ["derain", "dehaze"]
    prompts = PromptBank(HashedEncoder(), tasks).embeddings
    rows = prompt_sensitivity(model, prompts, tasks, levels=(0.0, 1.0), trials=3)
    assert [(r.block, r.task) for r in rows][:2] == [("dgpb_level1", "derain"),
                                                     ("dgpb_level1", "dehaze")]
    assert len(rows) == 4 * 2
    latent = model.dgpbs()["dgpb_latent"]
    scores = latent.dgm(prompts)[1].sort(descending=True).values
    row = next(r for r in rows if r.block == "dgpb_latent" and r.task == "dehaze")
    assert row.positions == 128
    assert row.min_gap == pytest.approx(float((scores[:-1] - scores[1:]).min()), rel=1e-5)
    for r in rows:
        assert r.changed_max[0.0] == 0  # no noise, no change
    assert rows[-1].changed_mean[1.0] > 0  # noise as large as the prompt reorders the latent
    assert "| dgpb_latent | dehaze | 128 |" in format_sensitivity(rows, (0.0, 1.0))


def test_check_prompts_script_runs_on_initial_weights(capsys, tmp_path):
    from pathlib import Path

    from dfpir.cli import check_prompts as module

    root = Path(__file__).resolve().parents[1]
    tiny = ["model.dim=8", "model.num_blocks=[1, 1, 1, 1]", "model.num_refinement_blocks=1",
            "model.heads=[1, 2, 2, 4]"]
    args = ["--config", str(root / "configs" / "demo.yaml"), "--trials", "2",
            "--csv", str(tmp_path / "s.csv")] + [a for s in tiny for a in ("--set", s)]
    assert module.main(args) == 0
    out = capsys.readouterr().out
    assert "initial weights" in out and "| dgpb_latent | lowlight | 128 |" in out
    assert (tmp_path / "s.csv").read_text().startswith("block,task,positions,min_gap")
    assert module.main(["--config", str(tmp_path / "missing.yaml")]) == 2
