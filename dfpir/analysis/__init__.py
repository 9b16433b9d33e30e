"""The paper's analysis figures for any checkpoint: t-SNE of features by task (Figure 3), the
DGCPM channel order per prompt (Figure 7), the feature maps through a DGPB (Figure 6), and a
restoration grid. Each ``compute_*`` returns the numbers, each ``save_*`` writes a PNG and the
numbers (CSV, .npz). ``scripts/visualize.py`` is the command line; see the README, "Figures".
"""

from .common import Analysis, default_tasks, load_analysis, record, resolve_config
from .features import FeatureResult, compute_features, pick_image, save_features
from .grid import GridRow, compute_grid, save_grid
from .sensitivity import (
    NOISE_LEVELS,
    SensitivityRow,
    format_sensitivity,
    prompt_sensitivity,
    write_csv_rows,
)
from .shuffle import ShuffleResult, channel_orders, compute_shuffle, differ_matrix, save_shuffle
from .tsne import DEFAULT_LAYER, TSNEResult, clip_perplexity, compute_tsne, save_tsne

__all__ = [
    "DEFAULT_LAYER",
    "NOISE_LEVELS",
    "Analysis",
    "FeatureResult",
    "GridRow",
    "SensitivityRow",
    "ShuffleResult",
    "TSNEResult",
    "channel_orders",
    "clip_perplexity",
    "compute_features",
    "compute_grid",
    "compute_shuffle",
    "compute_tsne",
    "default_tasks",
    "differ_matrix",
    "format_sensitivity",
    "load_analysis",
    "pick_image",
    "prompt_sensitivity",
    "record",
    "resolve_config",
    "save_features",
    "save_grid",
    "save_shuffle",
    "save_tsne",
    "write_csv_rows",
]
