"""Paper Figure 3: t-SNE of intermediate features of test images, coloured by task.

Each sample is the global average (over H and W) of one module's output for one test image,
restored with the prompt of its task. The default module is ``dgpb_latent``: the latent after
its DGPB; ``latent`` is the same feature before the DGPB. With few test images (the built-in
demo has two per task) each image also gives ``crops`` random ``crop_size`` x ``crop_size``
crops (default 4 of 96 x 96, seeded by the image name), each its own sample, so the embedding has
enough points; ``crops=0`` uses the whole images only. The silhouette score of the pooled features
against the task labels (in [-1, 1], higher = tasks better separated) is the number to compare
two models with; it is computed before t-SNE, so it does not depend on the embedding's seed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.transforms import stable_seed
from .common import Analysis, forward_until, new_figure, record, save_figure, write_csv

DEFAULT_LAYER = "dgpb_latent"
DEFAULT_CROP = 96


@dataclass
class TSNEResult:
    """Pooled features, their 2-D embedding and the separation scores."""

    layer: str
    features: np.ndarray  # (N, C) pooled features
    embedding: np.ndarray  # (N, 2)
    tasks: list[str]
    sets: list[str]
    images: list[str]
    crops: list[int]  # 0 = the whole image, 1.. = random crops
    perplexity: float
    silhouette: float  # on the pooled features; NaN when undefined (one task, or one per task)
    silhouette_2d: float  # on the 2-D embedding, for reference
    metric: str = "euclidean"
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # top, left, h, w


def pool(feature: torch.Tensor) -> torch.Tensor:
    """Global average over every dimension after the channels: (B, C, ...) -> (B, C)."""
    return feature.float().flatten(2).mean(-1) if feature.dim() > 2 else feature.float()


def crop_boxes(height: int, width: int, crops: int, size: int, seed: int
               ) -> list[tuple[int, int, int, int]]:
    """``crops`` random square crops (top, left, size, size) inside an image, from ``seed``;
    ``size`` is clipped to the shorter side."""
    if size < 1:
        raise ValueError(f"the crop size must be positive, got {size}")
    size = min(size, height, width)
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1)),
             size, size) for _ in range(crops)]


def clip_perplexity(perplexity: float, samples: int) -> float:
    """t-SNE needs perplexity < samples; keep it at most (N - 1) / 3 (its ~3 x perplexity
    neighbours must exist), and at least 1."""
    return float(max(1.0, min(perplexity, (samples - 1) / 3)))


def separation_score(features: np.ndarray, labels: list[str], metric: str = "euclidean"
                     ) -> float:
    """Silhouette score of ``features`` against ``labels``; NaN when it is undefined (fewer
    than two labels, or as many labels as samples)."""
    from sklearn.metrics import silhouette_score

    if not 2 <= len(set(labels)) <= len(labels) - 1:
        return math.nan
    return float(silhouette_score(features, labels, metric=metric))


@torch.no_grad()
def collect_features(analysis: Analysis, layer: str = DEFAULT_LAYER, crops: int = 4,
                     crop_size: int = DEFAULT_CROP, max_images: int = 0, sets: list[str] | None = None,
                     seed: int = 0) -> dict:
    """Pooled ``layer`` features of every test image (and its crops), with their labels."""
    model, device = analysis.model, analysis.device
    test_sets = analysis.test_sets()
    names = sets or list(test_sets)
    unknown = [n for n in names if n not in test_sets]
    if unknown:
        raise ValueError(f"unknown test set(s) {unknown}; this config has {list(test_sets)}")
    rows: dict = dict(features=[], tasks=[], sets=[], images=[], crops=[], boxes=[])
    with record(model, outputs=[layer], stop=True) as store:
        for set_name in names:
            dataset = test_sets[set_name]
            count = len(dataset) if not max_images else min(max_images, len(dataset))
            for index in range(count):
                degraded, _, task, image_name = dataset[index]
                h, w = degraded.shape[-2:]
                boxes = [(0, 0, h, w)] + crop_boxes(
                    h, w, crops, crop_size, stable_seed(seed, set_name, image_name))
                prompt = analysis.prompts([task])
                image = degraded.to(device)[None]
                store.clear()
                forward_until(model, image, prompt)
                if layer not in store:
                    raise ValueError(f"module {layer!r} does not run in the forward pass")
                pooled = [pool(store[layer])]
                if len(boxes) > 1:  # the crops share a size: one batch
                    batch = torch.cat([image[..., t:t + bh, x:x + bw]
                                       for t, x, bh, bw in boxes[1:]])
                    forward_until(model, batch,
                                  None if prompt is None else prompt.expand(len(batch), -1))
                    pooled.append(pool(store[layer]))
                for crop, vector in enumerate(torch.cat(pooled).cpu().numpy()):
                    rows["features"].append(vector)
                    rows["tasks"].append(task)
                    rows["sets"].append(set_name)
                    rows["images"].append(str(image_name))
                    rows["crops"].append(crop)
                    rows["boxes"].append(boxes[crop])
    if not rows["features"]:
        raise ValueError("no test images: the config's test sets are empty")
    rows["features"] = np.stack(rows["features"])
    return rows


def embed(features: np.ndarray, perplexity: float = 30.0, seed: int = 0,
          metric: str = "euclidean") -> tuple[np.ndarray, float]:
    """2-D t-SNE embedding (scikit-learn, PCA init) and the perplexity actually used."""
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 2:
        raise ValueError(f"t-SNE needs at least 2 samples, got {n}")
    used = clip_perplexity(perplexity, n)
    tsne = TSNE(n_components=2, perplexity=used, init="pca", learning_rate="auto",
                random_state=seed, metric=metric)
    return tsne.fit_transform(features.astype(np.float64)), used


def compute_tsne(analysis: Analysis, layer: str = DEFAULT_LAYER, crops: int = 4,
                 crop_size: int = DEFAULT_CROP, max_images: int = 0, sets: list[str] | None = None,
                 perplexity: float = 30.0, seed: int = 0, metric: str = "euclidean"
                 ) -> TSNEResult:
    """Features of ``layer`` for the test images, their t-SNE embedding and silhouette.
    The default layer falls back to ``latent`` (the same place) for a model without DGPB."""
    if layer == DEFAULT_LAYER and analysis.model.dgpbs().get(DEFAULT_LAYER) is None:
        layer = "latent"
    rows = collect_features(analysis, layer, crops, crop_size, max_images, sets, seed)
    features = rows["features"]
    embedding, used = embed(features, perplexity, seed, metric)
    return TSNEResult(
        layer=layer, features=features, embedding=embedding, tasks=rows["tasks"],
        sets=rows["sets"], images=rows["images"], crops=rows["crops"], perplexity=used,
        silhouette=separation_score(features, rows["tasks"], metric),
        silhouette_2d=separation_score(embedding, rows["tasks"]), metric=metric,
        boxes=rows["boxes"],
    )


def _score(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def plot_tsne(result: TSNEResult, title: str = ""):
    """Scatter of the embedding, one colour per task; whole images as circles, crops as dots."""
    fig = new_figure(6.4, 5.4)
    ax = fig.add_subplot()
    tasks = list(dict.fromkeys(result.tasks))
    cmap = _colours(len(tasks))
    crops = np.asarray(result.crops)
    for i, task in enumerate(tasks):
        mine = np.asarray([t == task for t in result.tasks])
        for whole, marker, size in ((True, "o", 46), (False, ".", 30)):
            pick = mine & ((crops == 0) == whole)
            if pick.any():
                ax.scatter(result.embedding[pick, 0], result.embedding[pick, 1], s=size,
                           marker=marker, color=cmap[i], label=task if whole else None,
                           edgecolors="black" if whole else "none", linewidths=0.4, alpha=0.85)
    ax.legend(fontsize=8, loc="best", frameon=True)
    ax.set_xticks([])
    ax.set_yticks([])
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}t-SNE of {result.layer} ({len(result.tasks)} points, "
                 f"perplexity {result.perplexity:.3g})\nsilhouette {_score(result.silhouette)} "
                 f"(pooled features, {result.metric}); 2-D {_score(result.silhouette_2d)}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _colours(count: int) -> list:
    import matplotlib

    name = "tab10" if count <= 10 else "tab20"
    cmap = matplotlib.colormaps[name]
    return [cmap(i % cmap.N) for i in range(count)]


def save_tsne(result: TSNEResult, out_dir: str | os.PathLike, title: str = "",
              stem: str = "tsne") -> dict[str, Path]:
    """Write ``tsne.png``, the points (``tsne.csv``), the scores (``tsne_summary.csv``) and
    the arrays (``tsne.npz``) to ``out_dir``."""
    out = Path(out_dir)
    fig = plot_tsne(result, title)
    paths = {"png": save_figure(fig, out / f"{stem}.png")}
    paths["csv"] = write_csv(out / f"{stem}.csv", [
        dict(set=s, task=t, image=i, crop=c, top=b[0], left=b[1], height=b[2], width=b[3],
             x=float(e[0]), y=float(e[1]))
        for s, t, i, c, b, e in zip(result.sets, result.tasks, result.images, result.crops,
                                    result.boxes, result.embedding, strict=True)
    ])
    paths["summary"] = write_csv(out / f"{stem}_summary.csv", [dict(
        layer=result.layer, samples=len(result.tasks), tasks=len(set(result.tasks)),
        channels=result.features.shape[1], perplexity=result.perplexity, metric=result.metric,
        silhouette=result.silhouette, silhouette_2d=result.silhouette_2d,
    )])
    paths["npz"] = out / f"{stem}.npz"
    np.savez_compressed(paths["npz"], features=result.features, embedding=result.embedding,
                        tasks=np.asarray(result.tasks), sets=np.asarray(result.sets),
                        images=np.asarray(result.images), crops=np.asarray(result.crops),
                        silhouette=result.silhouette, silhouette_2d=result.silhouette_2d,
                        perplexity=result.perplexity, layer=result.layer)
    return paths
