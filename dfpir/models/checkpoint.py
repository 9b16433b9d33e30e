"""Load and write checkpoints: ours, the released DFPIR ones and the released Restormer ones.

The backbone keeps the release's parameter names; the DGPB parts use the paper's names
(DGM, DGCPM, CAAPM). ``RELEASE_TO_OURS`` is the explicit map between the two.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import DfpirError
from ..paths import not_a_file

#: Released DFPIR module name -> ours.
RELEASE_BLOCKS = {
    "encoder_shuffle_channel1": "dgpb_level1",
    "encoder_shuffle_channel2": "dgpb_level2",
    "encoder_shuffle_channel3": "dgpb_level3",
    "latent_shuffle_channel": "dgpb_latent",
}

#: Inside one released DGPB: parameter path -> ours.
RELEASE_TO_OURS = {
    "linear_layer1": "dgm.fc1",
    "linear_layer3": "dgm.fc2",
    "conv1x1": "dgcpm.expand",
    "conv_out": "dgcpm.reduce",
    "norm1": "caapm.norm_q",
    "norm2": "caapm.norm_kv",
    "norm3": "norm_ffn",
    "select_attn.temperature": "caapm.temperature",
    "select_attn.attn4": "caapm.scale",
    "select_attn.q": "caapm.q",
    "select_attn.q_dwconv": "caapm.q_dwconv",
    "select_attn.kv": "caapm.kv",
    "select_attn.kv_dwconv": "caapm.kv_dwconv",
    "select_attn.project_out": "caapm.project_out",
    "ffn": "ffn",
}

#: Scalars of an earlier attention variant that some released files are reported to still carry
#: although the released model never uses them; dropped with a warning when present.
RELEASE_UNUSED = re.compile(r"^(encoder_shuffle_channel[123]|latent_shuffle_channel)"
                            r"\.select_attn\.attn[123]$")


class CheckpointError(DfpirError, RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the model."""


def _rename(key: str, blocks: Mapping[str, str], parts: Mapping[str, str]) -> str:
    block, _, rest = key.partition(".")
    if block not in blocks:
        return key
    # longest match first, so "select_attn.q_dwconv" is not taken for "select_attn.q"
    for old in sorted(parts, key=len, reverse=True):
        if rest == old or rest.startswith(old + "."):
            return f"{blocks[block]}.{parts[old]}{rest[len(old):]}"
    return key


def release_to_ours(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a released DFPIR state dict to this package's names."""
    out = {}
    for key, value in state.items():
        if RELEASE_UNUSED.match(key):
            warnings.warn(f"ignoring {key}: not used by the released model", stacklevel=3)
            continue
        out[_rename(key, RELEASE_BLOCKS, RELEASE_TO_OURS)] = value
    return out


def ours_to_release(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename this package's state dict to the released DFPIR names."""
    blocks = {v: k for k, v in RELEASE_BLOCKS.items()}
    parts = {v: k for k, v in RELEASE_TO_OURS.items()}
    return {_rename(k, blocks, parts): v for k, v in state.items()}


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def _weights_only_failure(err: BaseException) -> str | None:
    """What ``weights_only`` loading stopped at, without torch's advice to load with
    ``weights_only=False`` (which would run code stored in the file); ``None`` for errors
    raised before unpickling (a damaged zip, ...)."""
    text = str(err)
    if "Weights only load failed" not in text:
        return None
    detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text \
        else ""
    detail = " ".join(detail.split(". Please use")[0].split("\n\nCheck the")[0].split())
    return detail.rstrip(".") or "an object weights_only loading does not allow"


def load_failure(err: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line, never with torch's
    advice to load with ``weights_only=False`` (which would run code stored in the file)."""
    detail = _weights_only_failure(err)
    if detail is not None:
        return detail
    text = " ".join(str(err).split())
    if not text:
        return f"{type(err).__name__} (the file ends too early or is not a torch.save file)"
    if isinstance(err, (KeyError, IndexError, AttributeError, TypeError)) or len(text) < 20:
        # the unpickler tripping over bytes that are no pickle: "KeyError: 174812789"
        return f"not a torch.save file ({type(err).__name__}: {text[:80]})"
    return text


def read_checkpoint(path: str | os.PathLike, what: str = "checkpoint",
                    expected: str = "a DFPIR/Restormer release checkpoint or one of this "
                                    "package's") -> dict:
    """``torch.load`` with ``weights_only=True`` and an error that names the file (as
    ``what``, with the kind of file ``expected``); a pickle of arbitrary objects is refused as
    unsafe, never loaded another way."""
    path = Path(path)
    why = not_a_file(path) or ("is empty (0 bytes)" if path.stat().st_size == 0 else None)
    if why:
        raise CheckpointError(f"{what} {path} {why}; expected a file written by torch.save")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, pickle of arbitrary objects, ...
        detail = _weights_only_failure(err)
        if detail is not None and detail.startswith("Unsupported global"):
            reason = (f"{what} {path} is refused as unsafe: it is not a plain checkpoint "
                      f"of tensors and plain values ({detail}), and loading it would run code "
                      "stored in the file")
        else:
            reason = f"cannot read {what} {path}: {load_failure(err)}"
        raise CheckpointError(
            f"{reason}. Expected a file written by torch.save ({expected})"
        ) from (None if detail is not None else err)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def detect_layout(ckpt: Mapping) -> tuple[str, dict[str, torch.Tensor]]:
    """Which layout a loaded checkpoint has, and its state dict in this package's names.

    Layouts: ``"ours"`` (``{"model": ...}``), ``"dfpir_release"`` (``{"state_dict": ...}``),
    ``"restormer_release"`` (``{"params": ...}``) or ``"state_dict"`` (a bare state dict, in
    either naming).
    """
    if "model" in ckpt and isinstance(ckpt["model"], Mapping):
        return "ours", dict(ckpt["model"])
    if "params" in ckpt and isinstance(ckpt["params"], Mapping):
        return "restormer_release", _strip_prefix(ckpt["params"], "module.")
    if "state_dict" in ckpt and isinstance(ckpt["state_dict"], Mapping):
        return "dfpir_release", release_to_ours(_strip_prefix(ckpt["state_dict"], "module."))
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return "state_dict", release_to_ours(_strip_prefix(ckpt, "module."))
    raise CheckpointError(
        "unrecognised checkpoint: expected a dict with 'model' (this package), 'state_dict' "
        f"(DFPIR release) or 'params' (Restormer release); found keys {sorted(ckpt)[:10]}"
    )


def _describe(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "") -> None:
    """Raise a ``CheckpointError`` naming every missing, unexpected or misshapen key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} != model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if shapes:
        problems.append(f"wrong shapes: {_describe(shapes)}")
    if problems:
        where = f" from {source}" if source else ""
        hint = ""
        if any(k.startswith("dgpb_") for k in missing) and not any("dgpb_" in k for k in state):
            hint = " (a Restormer checkpoint loads into the baseline: model.dgcpm/caapm/ca off)"
        raise CheckpointError(f"checkpoint{where} does not fit the model{hint}; " +
                              "; ".join(problems))


def non_finite_keys(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in ``state`` holding a NaN or an infinity."""
    return [k for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def check_finite(state: Mapping[str, torch.Tensor], source: str = "") -> None:
    """Raise a ``CheckpointError`` naming the parameters with NaN or infinite values: such
    weights restore nothing (black images), so they are refused instead of loaded."""
    bad = non_finite_keys(state)
    if bad:
        where = f" {source}" if source else ""
        raise CheckpointError(
            f"checkpoint{where} holds non-finite values (NaN or inf) in {len(bad)} "
            f"parameter(s): {_describe(bad)}; it is unusable (a diverged training?); use an "
            "earlier checkpoint")


def load_weights(model: nn.Module, checkpoint: str | os.PathLike | Mapping) -> str:
    """Load a checkpoint (path or loaded dict) strictly into ``model``; returns its layout.

    Accepts this package's checkpoints, the released DFPIR checkpoints and the released
    Restormer checkpoints (into the baseline configuration).
    """
    source = str(checkpoint) if not isinstance(checkpoint, Mapping) else ""
    ckpt = checkpoint if isinstance(checkpoint, Mapping) else read_checkpoint(checkpoint)
    layout, state = detect_layout(ckpt)
    check_state_dict(model, state, source)
    check_finite(state, source)
    model.load_state_dict(state, strict=True)
    return layout


def release_checkpoint(model: nn.Module, epoch: int = 0) -> dict:
    """The model's weights in the released DFPIR checkpoint layout (or Restormer's, for the
    baseline), ready for ``torch.save``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if not any(k.startswith("dgpb_") for k in state):
        return {"params": state}
    return {"epoch": epoch, "state_dict": ours_to_release(state), "optimizer": {},
            "scheduler": {}}
