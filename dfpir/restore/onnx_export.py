"""Per-task export: fold one degradation's prompt into the weights; ONNX and safetensors.

The prompt reaches DFPIR only through the DGMs. For a fixed prompt the DGM scores, hence the
DGCPM's channel order, are constants, and ``reduce . reorder . expand`` is one fixed (C x C)
1x1 convolution. ``fold_prompt`` measures that affine map on each DGCPM as it is (in float64,
by feeding it the zero vector and the unit vectors), so it follows whatever arithmetic the
model's DGCPM uses, and replaces DGM + DGCPM by that plain convolution. The result is a plain
image-to-image network: no prompt input, no CLIP.

``TaskModel`` wraps it with the reflect padding to a multiple of 8 written as an index gather
(branch-free, so the exported graph takes any height and width) and the crop back.
``export_onnx`` writes it with dynamic batch, height and width; ``export_safetensors`` writes the
folded weights; both record the task, sentence, prompt encoder, source checkpoint and model
config in their metadata. ``dfpir.onnx_runtime`` runs the ONNX file with onnxruntime and numpy.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..models import DFPIR, DFPIRConfig
from ..outputs import replaced

__all__ = [
    "EXPORT_FORMAT",
    "FixedChannelMix",
    "TaskModel",
    "export_onnx",
    "export_safetensors",
    "fold_prompt",
    "load_task_model",
    "task_model_from_checkpoint",
]

logger = logging.getLogger(__name__)

#: Written into the metadata of every export; ``dfpir.onnx_runtime`` checks it.
EXPORT_FORMAT = "dfpir-task-v1"


class FixedChannelMix(nn.Module):
    """The DGCPM of one fixed prompt: a plain 1x1 convolution C -> C (scores are ignored)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, x: torch.Tensor, scores: object = None) -> torch.Tensor:
        return self.mix(x)


class _NoScores(nn.Module):
    """Stands in for the DGM of a folded block: the scores are baked into ``FixedChannelMix``."""

    def forward(self, prompt: object) -> None:
        return None


def _fold_structure(model: DFPIR) -> DFPIR:
    """Replace every DGM + DGCPM of ``model`` (in place) by an unset ``FixedChannelMix``."""
    for block in model.dgpbs().values():
        if block.dgcpm is not None:
            block.dgcpm = FixedChannelMix(block.dgcpm.expand.in_channels)
            block.dgm = _NoScores()
    return model


@torch.no_grad()
def fold_prompt(model: DFPIR, prompt: torch.Tensor) -> DFPIR:
    """A copy of ``model`` (CPU, eval) with ``prompt`` (prompt_dim,) folded into each DGCPM.

    The DGCPM is affine in its input for given scores, so with ``b = f(0)`` and
    ``W[:, i] = f(e_i) - b`` it equals the 1x1 conv (W, b); both are measured in float64.
    """
    folded = copy.deepcopy(model).cpu().eval()
    prompt = prompt.detach().reshape(1, -1).cpu().double()
    for block in folded.dgpbs().values():
        if block.dgcpm is None:
            continue
        dgm = copy.deepcopy(block.dgm).double()
        dgcpm = copy.deepcopy(block.dgcpm).double()
        channels = dgcpm.expand.in_channels
        scores = dgm(prompt)
        # unit vectors as the pixels of a (1, C, C, 1) map: pixel i is e_i
        units = torch.eye(channels, dtype=torch.float64).reshape(1, channels, channels, 1)
        bias = dgcpm(torch.zeros(1, channels, 1, 1, dtype=torch.float64), scores)[0, :, 0, 0]
        weight = dgcpm(units, scores)[0, :, :, 0] - bias[:, None]
        mix = FixedChannelMix(channels)
        mix.mix.weight.copy_(weight[:, :, None, None].float())
        mix.mix.bias.copy_(bias.float())
        block.dgcpm = mix
        block.dgm = _NoScores()
    return folded


def _reflect_index(n: torch.Tensor | int, multiple: int, device: torch.device) -> torch.Tensor:
    """Row indices that reflect-pad a length ``n`` to the next multiple (no branch on ``n``)."""
    index = torch.arange(((n + multiple - 1) // multiple) * multiple, device=device)
    return torch.where(index < n, index, 2 * n - 2 - index)


class TaskModel(nn.Module):
    """A folded DFPIR for one degradation: ``forward(image)`` with no prompt.

    Pads by reflection to a multiple of ``pad_multiple`` as an index gather (so an exported
    graph keeps height and width dynamic) and crops back: the same result as ``DFPIR.forward``
    for images of at least 5x5 pixels (smaller ones, which DFPIR pads by replication, are
    padded by ``dfpir.onnx_runtime`` before they reach the graph).
    """

    def __init__(self, net: DFPIR, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.net = net
        self.metadata = dict(metadata or {})
        # a placeholder for DFPIR.forward's prompt check; every DGM that read it is folded away
        self.register_buffer("prompt", torch.zeros(1, net.config.prompt_dim), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        multiple = self.net.config.pad_multiple
        x = image.index_select(2, _reflect_index(h, multiple, image.device))
        x = x.index_select(3, _reflect_index(w, multiple, image.device))
        prompt = self.prompt.to(x.dtype) if self.net.config.has_dgpb else None
        return self.net(x, prompt)[..., :h, :w]


def _file_digest(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def task_model_from_checkpoint(
    checkpoint: str | os.PathLike,
    task: str | None = None,
    prompt_text: str | None = None,
    config: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
) -> TaskModel:
    """Load a checkpoint (as ``scripts/restore.py`` does), embed the task's sentence (or
    ``prompt_text``) with the configured encoder and fold it in. The metadata says which."""
    from ..loading import load_experiment, untrained_task_warning
    from ..prompts import PromptError, get_degradation
    from . import prompt_embedding

    loaded = load_experiment(checkpoint, config, overrides, "cpu")
    cfg = loaded.cfg
    meta = {
        "format": EXPORT_FORMAT,
        "source_checkpoint": str(checkpoint),
        "source_sha256": _file_digest(checkpoint),
        "model_config": json.dumps(dataclasses.asdict(loaded.config), sort_keys=True),
        "pad_multiple": str(loaded.config.pad_multiple),
        "input": "image: float32 (N, 3, H, W), RGB in [0, 1], any H and W",
        "output": "restored: float32 (N, 3, H, W), not clipped",
    }
    if loaded.config.has_dgpb:
        if task is None and prompt_text is None:
            raise PromptError("give the degradation to export (--task NAME) or a prompt text")
        prompt, sentence = prompt_embedding(cfg, task, prompt_text, "cpu")
        untrained = untrained_task_warning(loaded, task)
        if untrained:
            logger.warning("warning: %s", untrained)
        net = fold_prompt(loaded.model, prompt)
        meta.update(task=task or "custom", sentence=sentence, prompt_encoder=cfg.prompts.encoder,
                    prompt_style=cfg.prompts.style)
    else:
        if task is not None:
            get_degradation(task)
        net = copy.deepcopy(loaded.model).cpu().eval()
        meta.update(task=task or "any", sentence="", prompt_encoder="none (Restormer baseline)")
    return TaskModel(net, meta).eval()


@torch.no_grad()
def export_onnx(model: TaskModel, path: str | os.PathLike, opset: int = 18,
                example_size: tuple[int, int] = (64, 64)) -> Path:
    """Write ``model`` as one ONNX file (weights inline) with dynamic batch, height and width,
    and its metadata as the model's metadata properties. Needs the ``onnx`` extra."""
    try:
        import onnx
    except ImportError as err:
        raise RuntimeError("ONNX export needs the onnx extra: pip install -e \".[onnx]\"") from err
    from torch.export import Dim

    path = Path(path)
    model = model.cpu().eval()
    # batch 2: torch.export would specialise a size-1 dimension to the constant 1
    example = torch.rand(2, model.net.config.in_channels, *example_size)
    dims = {"image": {0: Dim("batch", min=1, max=1024), 2: Dim("height", min=5, max=65536),
                      3: Dim("width", min=5, max=65536)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced(path) as tmp:  # a new file renamed over the old: never half, never through
        torch.onnx.export(model, (example,), str(tmp), dynamo=True, external_data=False,
                          input_names=["image"], output_names=["restored"],
                          dynamic_shapes=dims, opset_version=opset, verbose=False)
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for key, value in model.metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        proto.doc_string = (f"DFPIR restoring '{model.metadata.get('task', '?')}' with the prompt "
                            "folded into the weights; see dfpir.onnx_runtime")
        onnx.save(proto, str(tmp))
    return path


def export_safetensors(model: TaskModel, path: str | os.PathLike) -> Path:
    """Write the folded weights (keys of ``TaskModel.net``) with the metadata as safetensors
    metadata; ``load_task_model`` reads it back."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in model.metadata.items()})
    return path


def load_task_model(path: str | os.PathLike) -> TaskModel:
    """A ``TaskModel`` from a file written by ``export_safetensors`` (strict key check)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata() or {})
    if meta.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path} is not a dfpir per-task export (format {meta.get('format')!r}, "
                         f"expected {EXPORT_FORMAT!r})")
    net = _fold_structure(DFPIR(DFPIRConfig(**json.loads(meta["model_config"]))))
    net.load_state_dict(load_file(str(path)), strict=True)
    return TaskModel(net, meta).eval()


# ------------------------------------------------------------------ command line
