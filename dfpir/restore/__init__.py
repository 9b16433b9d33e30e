"""Restoring images: whole or tiled inference of a tensor (``inference``), images on disk
(``files``; which ones and where their results go: ``folders``), per-task export folded into
plain convolutions (``onnx_export``) and its onnxruntime runner (``onnx_runtime``)."""

from ..outputs import unique_path
from .files import (
    PreparedImage,
    RestoreSummary,
    conversion_notes,
    finish_image,
    prepare_image,
    prompt_embedding,
    restore_files,
    restore_paths,
    side_by_side,
)
from .folders import RESULT_TEXT, collect_inputs, frame_count, output_paths
from .inference import (
    blend_window,
    restore,
    tile_starts,
)

__all__ = [
    "PreparedImage",
    "RESULT_TEXT",
    "RestoreSummary",
    "blend_window",
    "collect_inputs",
    "conversion_notes",
    "finish_image",
    "frame_count",
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
