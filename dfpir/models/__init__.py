"""DFPIR and its Restormer backbone."""

from .dfpir import DFPIR, TABLE3_ROWS, DFPIRConfig, build_model, pad_to_multiple
from .dgpb import CAAPM, DGCPM, DGM, DGPB, keep_top_k

__all__ = [
    "CAAPM",
    "DFPIR",
    "DGCPM",
    "DGM",
    "DGPB",
    "TABLE3_ROWS",
    "DFPIRConfig",
    "build_model",
    "keep_top_k",
    "pad_to_multiple",
]
