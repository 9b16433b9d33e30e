"""Run a per-task ONNX export (``scripts/export.py --onnx``) with onnxruntime and numpy only.

No torch, no model code, no CLIP weights: the prompt is folded into the weights at export
time (``dfpir.onnx_export``). ``OnnxRestorer.restore`` takes an HxWx3 float image in [0, 1]
and returns the restored one, whole or in overlapping tiles blended like
``dfpir.inference.restore`` (the same tile starts and linear cross-fade, in numpy).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DfpirError
from ..paths import not_a_file

__all__ = ["EXPORT_FORMAT", "OnnxModelError", "OnnxRestorer"]

#: The format tag ``dfpir.onnx_export`` writes (kept here so this module needs no torch).
EXPORT_FORMAT = "dfpir-task-v1"


class OnnxModelError(DfpirError, ValueError):
    """The file is missing, not ONNX, not a dfpir per-task export, or onnxruntime is absent."""


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def _ramp(size: int, overlap: int, start: bool, end: bool) -> np.ndarray:
    weights = np.ones(size, dtype=np.float32)
    n = min(overlap, size)
    if n > 0:
        ramp = (np.arange(n, dtype=np.float32) + 0.5) / n
        if start:
            weights[:n] = np.minimum(weights[:n], ramp)
        if end:
            weights[size - n:] = np.minimum(weights[size - n:], ramp[::-1])
    return weights


class OnnxRestorer:
    """An exported DFPIR for one degradation, on onnxruntime's CPU provider by default.

    ``threads``: onnxruntime's intra-op threads (None: its default, all cores).
    ``metadata``: what the export recorded (task, sentence, prompt_encoder, source_checkpoint,
    model_config, ...).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise OnnxModelError("running an ONNX model needs onnxruntime: pip install -e "
                                 "\".[onnx]\"") from err
        self.path = Path(path)
        why = not_a_file(self.path)
        if why:
            raise OnnxModelError(f"ONNX model {self.path} {why}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise OnnxModelError(f"cannot load ONNX model {self.path}: {err}") from err
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.metadata.get("format") != EXPORT_FORMAT:
            raise OnnxModelError(f"{self.path} is not a dfpir per-task export (no "
                                 f"format={EXPORT_FORMAT} in its metadata); write one with "
                                 "scripts/export.py --onnx")
        self.multiple = int(self.metadata.get("pad_multiple", 8))
        self.input_name = self.session.get_inputs()[0].name

    @property
    def task(self) -> str:
        return self.metadata.get("task", "?")

    @property
    def sentence(self) -> str:
        return self.metadata.get("sentence", "")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The raw network output for a (N, 3, H, W) float32 batch (not clipped).

        Images whose padding DFPIR does by replication (a side under 5 pixels, or one whose
        reflection would not fit) are padded so here, as ``dfpir.models.dfpir.pad_to_multiple``.
        """
        x = np.ascontiguousarray(batch, dtype=np.float32)
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if (ph or pw) and not (ph < h and pw < w):
            x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
        out = self.session.run(None, {self.input_name: x})[0]
        return out[..., :h, :w]

    def restore(self, rgb: np.ndarray, tile: int = 0, overlap: int = 32,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Restore an HxWx3 float image in [0, 1]; returns HxWx3 float32 clipped to [0, 1].

        ``tile > 0`` restores ``tile`` x ``tile`` tiles (rounded up to a multiple of 8)
        overlapping by ``overlap`` pixels and cross-fades them; ``progress(done, total)`` is
        called after each tile.
        """
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)
        height, width = x.shape[-2:]
        if tile > 0:
            tile = -(-tile // self.multiple) * self.multiple
            if overlap >= tile:
                raise ValueError(f"the tile overlap ({overlap}) must be smaller than the tile "
                                 f"({tile})")
        if tile <= 0 or (height <= tile and width <= tile):
            out = self.run(x)
            if progress:
                progress(1, 1)
        else:
            rows = _tile_starts(height, tile, overlap)
            cols = _tile_starts(width, tile, overlap)
            out = np.zeros_like(x)
            total = np.zeros((1, 1, height, width), dtype=np.float32)
            done = 0
            for i, top in enumerate(rows):
                for j, left in enumerate(cols):
                    th, tw = min(tile, height), min(tile, width)
                    piece = self.run(x[..., top:top + th, left:left + tw])
                    weight = (_ramp(th, overlap, i > 0, i < len(rows) - 1)[:, None]
                              * _ramp(tw, overlap, j > 0, j < len(cols) - 1)[None, :])
                    out[..., top:top + th, left:left + tw] += piece * weight
                    total[..., top:top + th, left:left + tw] += weight
                    done += 1
                    if progress:
                        progress(done, len(rows) * len(cols))
            out = out / total
        return np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0)
