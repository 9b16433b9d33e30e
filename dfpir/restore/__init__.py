"""Restoring images: whole or tiled inference of a tensor (``inference``), images on disk
(``files``), per-task export folded into plain convolutions (``onnx_export``) and its
onnxruntime runner (``onnx_runtime``)."""

from .files import (
    PreparedImage,
    RestoreSummary,
    collect_inputs,
    finish_image,
    output_paths,
    prepare_image,
    prompt_embedding,
    restore_files,
    restore_paths,
    side_by_side,
    unique_path,
)
from .inference import (
    blend_window,
    restore,
    tile_starts,
)

__all__ = [
    "PreparedImage",
    "RestoreSummary",
    "blend_window",
    "collect_inputs",
    "finish_image",
    "output_paths",
    "prepare_image",
    "prompt_embedding",
    "restore",
    "restore_files",
    "restore_paths",
    "side_by_side",
    "tile_starts",
    "unique_path",
]
