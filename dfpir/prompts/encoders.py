"""Degradation prompts: the registry of degradation types and the encoders that embed them.

The release embeds one sentence per degradation with the CLIP ViT-B/32 text encoder (OpenAI
weights, frozen). Three encoders are pluggable here:

- ``clip``: that encoder, through open_clip_torch, from a local weights file;
- ``file``: a saved table of embeddings keyed by sentence (written by ``scripts/export_prompts.py``);
- ``hashed``: a deterministic offline embedding derived from the sentence's SHA-256. It is NOT
  CLIP: it only gives each sentence a fixed, distinct vector, for tests and the built-in demo.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch

from ..data.tasks import TASKS
from ..errors import PromptError
from ..models.checkpoint import load_failure
from ..outputs import replaced
from ..paths import not_a_file
from .clip_weights import find_clip_weights


@dataclass(frozen=True)
class Degradation:
    """One degradation type: its name, the release's task id and its two prompt sentences."""

    name: str
    task_id: int
    detailed: str
    simple: str | None  # the release defines simple prompts for the three-task model only


# The release's (detailed, simple) sentences of each task of the registry ``data.tasks.TASKS``.
_SENTENCES: dict[str, tuple[str, str | None]] = {
    "denoise_15": ("Gaussian noise with a standard deviation of 15", "Noise"),
    "denoise_25": ("Gaussian noise with a standard deviation of 25", "Noise"),
    "denoise_50": ("Gaussian noise with a standard deviation of 50", "Noise"),
    "derain": ("Rain degradation with rain lines", "Rain"),
    "dehaze": ("Hazy degradation with normal haze", "Haze"),
    "deblur": ("Blur degradation with motion blur", None),
    "lowlight": ("Lowlight degradation", None),
}
if set(_SENTENCES) != set(TASKS):  # a task added to the registry needs its sentences here
    raise ImportError(f"prompt sentences for {sorted(set(TASKS) ^ set(_SENTENCES))} are missing "
                      "or not registered tasks (dfpir/data/tasks.py)")

# Names and task ids (the release's order) come from the task registry.
DEGRADATIONS: dict[str, Degradation] = {
    name: Degradation(name, task_id, *_SENTENCES[name]) for task_id, name in enumerate(TASKS)
}

PROMPT_STYLES = ("detailed", "simple")


def get_degradation(name: str) -> Degradation:
    """The registry entry of ``name``, with an error listing the valid names."""
    try:
        return DEGRADATIONS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(DEGRADATIONS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PromptError(
            f"unknown degradation {name!r}; {hint}valid names: {', '.join(DEGRADATIONS)}"
        ) from None


def prompt_sentence(name: str, style: str = "detailed") -> str:
    """The sentence the release encodes for degradation ``name`` in prompt ``style``."""
    if style not in PROMPT_STYLES:
        raise PromptError(f"unknown prompt style {style!r}; expected one of {PROMPT_STYLES}")
    degradation = get_degradation(name)
    sentence = degradation.detailed if style == "detailed" else degradation.simple
    if sentence is None:
        raise PromptError(f"the release defines no {style} prompt for {name!r}")
    return sentence


class PromptEncoder(Protocol):
    """Turns sentences into fixed embeddings of size ``dim``."""

    name: str
    dim: int

    def encode(self, sentences: list[str]) -> torch.Tensor:
        """(len(sentences), dim) float32 embeddings on the CPU."""
        ...


class HashedEncoder:
    """Deterministic stand-in for CLIP: a normal vector seeded by the sentence's SHA-256.

    Identical across processes and machines; unrelated sentences get unrelated vectors. Not a
    language model: similar sentences do NOT get similar vectors.
    """

    name = "hashed"

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def encode(self, sentences: list[str]) -> torch.Tensor:
        rows = []
        for sentence in sentences:
            seed = int.from_bytes(hashlib.sha256(sentence.encode("utf-8")).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).standard_normal(self.dim))
        return torch.from_numpy(np.stack(rows)).float()


class FileEncoder:
    """Embeddings read from a table saved by ``save_prompt_table`` (.pt)."""

    name = "file"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        why = not_a_file(self.path)
        if why:
            raise PromptError(
                f"prompt table {self.path} {why}; write one with "
                "`python scripts/export_prompts.py --out FILE` on a machine with the CLIP weights"
            )
        try:
            table = torch.load(self.path, map_location="cpu", weights_only=True)
            self.sentences = list(table["sentences"])
            self.embeddings = table["embeddings"].float()
            self.source = str(table.get("encoder", "unknown"))
            self.meta = {str(k): str(v) for k, v in dict(table.get("meta") or {}).items()}
        except Exception as err:
            raise PromptError(
                f"cannot read prompt table {self.path}: {load_failure(err)}. Expected a "
                "torch.save'd dict with "
                "'sentences' (list of str) and 'embeddings' (N x D tensor)"
            ) from err
        if self.embeddings.shape[0] != len(self.sentences):
            raise PromptError(f"prompt table {self.path}: sentence and embedding counts differ")
        self.dim = int(self.embeddings.shape[1])
        self._row = {s: i for i, s in enumerate(self.sentences)}
        print(f"prompts: table {self.path}: {self.provenance()}", flush=True)

    def provenance(self) -> str:
        """One line saying how the table's embeddings were made (tables written before this
        record existed say so)."""
        if not self.meta:
            return f"{self.source} embeddings; no record of device, dtype or versions"
        m = self.meta
        return (f"{m.get('encoder', self.source)} embeddings made on {m.get('device', '?')} "
                f"({m.get('device_name', '?')}), {m.get('dtype', m.get('precision', '?'))}, "
                f"torch {m.get('torch', '?')}, open_clip {m.get('open_clip', '?')}")

    def encode(self, sentences: list[str]) -> torch.Tensor:
        missing = [s for s in sentences if s not in self._row]
        if missing:
            raise PromptError(
                f"prompt table {self.path} has no embedding for {missing}; it holds "
                f"{self.sentences}"
            )
        return self.embeddings[[self._row[s] for s in sentences]].clone()


CLIP_PRECISIONS = ("fp16", "fp32")
CLIP_DEVICES = ("auto", "cpu", "cuda")


def clip_device(choice: str = "auto", preferred: str | torch.device | None = None) -> torch.device:
    """The device that runs CLIP for ``prompts.clip_device`` (auto | cpu | cuda).

    ``auto`` follows the release, which encodes on the GPU: ``preferred`` when it is a CUDA
    device, else the first GPU when there is one, else the CPU. ``cuda`` without a GPU is an error.
    """
    if choice not in CLIP_DEVICES:
        raise PromptError(f"prompts.clip_device must be one of {CLIP_DEVICES}, got {choice!r}")
    if choice == "cpu":
        return torch.device("cpu")
    if preferred is not None and torch.device(preferred).type == "cuda":
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if choice == "cuda":
        raise PromptError("prompts.clip_device is 'cuda' but no GPU is available here; use auto or cpu")
    return torch.device("cpu")


def precision_label(precision: str) -> str:
    """How a CLIP precision setting computes, in words (for logs and prompt tables)."""
    if precision == "fp16":
        return ("fp16 (OpenAI's mixed precision: Linear/attention/projection weights fp16, "
                "LayerNorms fp32)")
    return "fp32"


class ClipEncoder:
    """The release's prompt encoder: CLIP ViT-B/32 text tower, OpenAI weights, frozen.

    ``precision="fp16"`` reproduces the arithmetic of OpenAI's ``clip`` package on the GPU (its
    ``convert_weights``): Linear, attention and text-projection weights in fp16, every LayerNorm
    with fp32 weights computing in fp32, the embedding cast to float32. This is open_clip's own
    ``precision="fp16"`` path; a plain ``.half()`` also makes the LayerNorms fp16 and moves the
    embeddings by ~1e-3, enough to reorder DGCPM channels. ``"fp32"`` runs in full precision.
    Each sentence is encoded once and cached. ``state_dict`` (weights in memory) and
    ``model_kwargs`` (open_clip architecture overrides) exist for tests.
    """

    name = "clip"
    dim = 512

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp16",
        load_weights: bool = True,
        state_dict: dict[str, torch.Tensor] | None = None,
        model_kwargs: dict | None = None,
        verbose: bool = True,
    ) -> None:
        if precision not in CLIP_PRECISIONS:
            raise PromptError(f"CLIP precision must be 'fp16' or 'fp32', got {precision!r}")
        import open_clip

        self.device = torch.device(device) if device is not None else clip_device("auto")
        path = str(find_clip_weights(weights)) if load_weights and state_dict is None else None
        # The OpenAI weights were trained with QuickGELU; a bare file path does not say so.
        # precision="fp16" is open_clip's copy of OpenAI's convert_weights (LayerNorms stay fp32).
        self.model = open_clip.create_model(
            "ViT-B-32", pretrained=path, force_quick_gelu=True, device=self.device,
            precision=precision, **(model_kwargs or {}),
        ).eval()
        if state_dict is not None:
            self.model.load_state_dict(state_dict)  # copies into each parameter's own dtype
        self.model.requires_grad_(False)
        self.dim = int(self.model.text_projection.shape[1])
        self.tokenizer = open_clip.get_tokenizer("ViT-B-32")
        self.precision = precision
        self.weights = path or ("in-memory state dict" if state_dict is not None else "random")
        self._cache: dict[str, torch.Tensor] = {}
        if verbose:
            print(f"prompts: CLIP ViT-B/32 text encoder on {self.device}, "
                  f"{precision_label(precision)}; weights: {self.weights}", flush=True)

    def describe(self) -> dict[str, str]:
        """Where and how the embeddings were computed: recorded in prompt tables."""
        import open_clip

        return {
            "encoder": self.name,
            "device": str(self.device),
            "device_name": (torch.cuda.get_device_name(self.device)
                            if self.device.type == "cuda" else "cpu"),
            "precision": self.precision,
            "dtype": precision_label(self.precision),
            "torch": torch.__version__,
            "open_clip": open_clip.__version__,
            "weights": self.weights,
        }

    @torch.no_grad()
    def encode(self, sentences: list[str]) -> torch.Tensor:
        new = [s for s in dict.fromkeys(sentences) if s not in self._cache]
        if new:
            tokens = self.tokenizer(new).to(self.device)
            features = self.model.encode_text(tokens).float().cpu()
            self._cache.update(zip(new, features))
        return torch.stack([self._cache[s] for s in sentences])


@dataclass
class PromptConfig:
    """Which prompt encoder and sentences to use (the ``prompts:`` section of a config)."""

    # clip (the release), file (a saved table) or hashed (offline, not CLIP)
    encoder: Literal["clip", "file", "hashed"] = "clip"
    # the release's detailed sentences, or its simple one-word prompts
    style: Literal["detailed", "simple"] = "detailed"
    clip_weights: str | None = None  # local CLIP ViT-B/32 weights; default: the usual caches
    clip_precision: Literal["fp16", "fp32"] = "fp16"  # fp16: OpenAI's mixed precision, as the release; or fp32
    clip_device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: a GPU when there is one, as the release
    table: str | None = None  # the embedding table for encoder: file
    dim: int = 512  # embedding size the encoder gives


def build_encoder(cfg: PromptConfig, device: str | torch.device | None = None) -> PromptEncoder:
    """The prompt encoder a config asks for; fails at once if it cannot run here.

    ``device`` is the caller's device; CLIP runs where ``cfg.clip_device`` says (see
    ``clip_device``).
    """
    if cfg.encoder == "hashed":
        return HashedEncoder(cfg.dim)
    if cfg.encoder == "file":
        if not cfg.table:
            raise PromptError("prompts.encoder is 'file' but prompts.table names no file")
        return FileEncoder(cfg.table)
    if cfg.encoder == "clip":
        return ClipEncoder(cfg.clip_weights, device=clip_device(cfg.clip_device, device),
                           precision=cfg.clip_precision)
    raise PromptError(f"unknown prompt encoder {cfg.encoder!r}; expected clip, file or hashed")


class PromptBank:
    """The embeddings of a fixed list of degradations, computed once, looked up per sample."""

    def __init__(
        self, encoder: PromptEncoder, degradations: list[str], style: str = "detailed"
    ) -> None:
        self.names = list(degradations)
        self.sentences = [prompt_sentence(n, style) for n in self.names]
        self.embeddings = encoder.encode(self.sentences)
        self._index = {n: i for i, n in enumerate(self.names)}

    def indices(self, names: list[str]) -> torch.Tensor:
        unknown = [n for n in names if n not in self._index]
        if unknown:
            raise PromptError(f"no prompt for {unknown}; this bank holds {self.names}")
        return torch.tensor([self._index[n] for n in names])

    def __call__(self, names: list[str] | str, device: str | torch.device | None = None
                 ) -> torch.Tensor:
        """(len(names), dim) embeddings for a batch of degradation names."""
        if isinstance(names, str):
            names = [names]
        return self.embeddings[self.indices(names)].to(device)


def save_prompt_table(
    encoder: PromptEncoder, sentences: list[str], path: str | os.PathLike
) -> None:
    """Write the embeddings of ``sentences`` for the ``file`` encoder, with a record of how they
    were made (encoder, device, dtype, torch and open_clip versions) under ``meta``."""
    describe = getattr(encoder, "describe", None)
    meta = describe() if describe is not None else {"encoder": encoder.name}
    meta.setdefault("torch", torch.__version__)
    table = {
        "sentences": list(sentences),
        "embeddings": encoder.encode(list(sentences)),
        "encoder": encoder.name,
        "meta": {str(k): str(v) for k, v in meta.items()},
    }
    with replaced(path) as tmp:  # a new file: never written through a link, never half
        torch.save(table, tmp)


def all_sentences() -> list[str]:
    """Every detailed and simple sentence of the registry, without repeats."""
    out = []
    for d in DEGRADATIONS.values():
        out += [s for s in (d.detailed, d.simple) if s is not None]
    return list(dict.fromkeys(out))
