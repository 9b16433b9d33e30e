"""Paper Figure 6: what a DGPB does to the features of one image.

For the chosen DGPB, the channel mean of its input F, of the DGCPM output Q (after the channel
shuffle) and of the CAAPM output F_a (after the attention perturbation), side by side with the
degraded and the restored image. All maps come from forward hooks on one pass of the model. A
block without DGCPM uses F as the query (Q = F); one without attention has F_a = Q. The network
pads the image to a multiple of ``pad_multiple``; the maps are cropped back to the image's area
(ceil(H / s) x ceil(W / s) at a level of stride s: 1, 2, 4, 8 for level1..latent).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import read_image
from ..data.transforms import to_tensor
from ..eval.metrics import psnr
from .common import Analysis, image_hwc, new_figure, save_figure, write_csv

STAGES = ("input", "dgcpm", "caapm")
STAGE_TITLES = {"input": "DGPB input F", "dgcpm": "after DGCPM (Q)",
                "caapm": "after CAAPM (F_a)"}


@dataclass
class BlockMaps:
    """Channel-mean maps of one DGPB, cropped to the image; ``notes`` say which stage is a
    copy of the previous one because the module is off in this model."""

    block: str
    stride: int
    channels: int
    maps: dict[str, np.ndarray]  # stage -> (h, w)
    notes: dict[str, str]


@dataclass
class FeatureResult:
    """The maps of the chosen DGPBs and the images they come from."""

    task: str
    name: str
    degraded: np.ndarray  # HxWx3 in [0, 1]
    restored: np.ndarray
    clean: np.ndarray | None
    blocks: dict[str, BlockMaps]


def pick_image(analysis: Analysis, image: str | os.PathLike | None = None,
               task: str | None = None, set_name: str | None = None, index: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor | None, str, str]:
    """(degraded, clean or None, task, name): a file (``task`` says its degradation) or item
    ``index`` of test set ``set_name`` (default: the first test set)."""
    if image is not None:
        if task is None and analysis.has_prompts:
            raise ValueError("--image needs --task (the degradation whose prompt to use)")
        return to_tensor(read_image(image)), None, task or "", Path(image).stem
    test_sets = analysis.test_sets()
    if not test_sets:
        raise ValueError("the config has no test sets: pass --image PATH --task TASK")
    set_name = set_name or next(iter(test_sets))
    if set_name not in test_sets:
        raise ValueError(f"unknown test set {set_name!r}; this config has {list(test_sets)}")
    dataset = test_sets[set_name]
    if not 0 <= index < len(dataset):
        raise ValueError(f"test set {set_name} has {len(dataset)} images, no index {index}")
    degraded, clean, item_task, name = dataset[index]
    return degraded, clean, task or item_task, f"{set_name}/{name}"


@torch.no_grad()
def compute_features(analysis: Analysis, image: torch.Tensor, task: str,
                     blocks: Sequence[str] = ("dgpb_level1",), clean: torch.Tensor | None = None,
                     name: str = "") -> FeatureResult:
    """Run the model once on ``image`` (3, H, W) with ``task``'s prompt and keep the
    channel-mean maps of each DGPB in ``blocks`` (names of ``model.dgpbs()``)."""
    from .common import record

    model = analysis.model
    dgpbs = model.dgpbs()
    if not dgpbs:
        raise ValueError("this model has no DGPB (the Restormer baseline): no DGPB features")
    if not blocks:
        raise ValueError("no DGPB chosen")
    unknown = [b for b in blocks if b not in dgpbs]
    if unknown:
        raise ValueError(f"no DGPB named {unknown}; this model has {list(dgpbs) or 'none'}")
    outputs = [f"{b}.{part}" for b in blocks for part in ("dgcpm", "caapm")
               if getattr(dgpbs[b], part) is not None]
    h, w = image.shape[-2:]
    x = image.to(analysis.device)[None].float()
    with record(model, outputs=outputs, inputs=list(blocks)) as store:
        restored = model(x, analysis.prompts([task])).clamp(0, 1)
    multiple = model.config.pad_multiple
    padded = math.ceil(h / multiple) * multiple
    result = {}
    for block in blocks:
        feature = store[f"{block}:input"]
        stride = padded // feature.shape[-2]
        crop = (math.ceil(h / stride), math.ceil(w / stride))
        maps, notes, previous = {}, {}, feature
        for stage in STAGES:
            if stage == "input":
                tensor = feature
            elif f"{block}.{stage}" in store:
                tensor = store[f"{block}.{stage}"]
            else:
                tensor = previous
                notes[stage] = "off: Q = F" if stage == "dgcpm" else "off: F_a = Q"
            maps[stage] = tensor[0].float().mean(0)[: crop[0], : crop[1]].cpu().numpy()
            previous = tensor
        result[block] = BlockMaps(block, stride, int(feature.shape[1]), maps, notes)
    return FeatureResult(task, name, image_hwc(image), image_hwc(restored),
                         None if clean is None else image_hwc(clean), result)


def plot_features(result: FeatureResult, cmap: str = "viridis", title: str = ""):
    """One row per DGPB: degraded | F | Q | F_a | restored (| clean), each map min-max scaled."""
    blocks = list(result.blocks.values())
    columns = 5 + (result.clean is not None)
    height, width = result.degraded.shape[:2]
    panel = 2.6
    fig = new_figure(panel * columns, (panel * height / width + 0.35) * len(blocks) + 0.6)
    axes = fig.subplots(len(blocks), columns, squeeze=False)
    score = ""
    if result.clean is not None:
        score = (f" ({psnr(result.degraded, result.clean):.2f} dB)",
                 f" ({psnr(result.restored, result.clean):.2f} dB)")
    for row, maps in enumerate(blocks):
        images = [(result.degraded, "degraded" + (score[0] if score else ""))]
        images += [(maps.maps[s], f"{maps.block}: {STAGE_TITLES[s]}"
                    + (f"\n[{maps.notes[s]}]" if s in maps.notes else "")) for s in STAGES]
        images.append((result.restored, "restored" + (score[1] if score else "")))
        if result.clean is not None:
            images.append((result.clean, "ground truth"))
        for col, (array, label) in enumerate(images):
            ax = axes[row][col]
            ax.axis("off")
            is_map = array.ndim == 2
            if not is_map and row > 0:
                continue  # the images once, on the first row
            ax.imshow(array, cmap=cmap if is_map else None, interpolation="nearest")
            ax.set_title(label, fontsize=7)
    head = f"{title}: " if title else ""
    fig.suptitle(f"{head}{result.name} ({result.task}): channel mean of the DGPB features",
                 fontsize=9)
    fig.tight_layout()
    return fig


def map_stats(result: FeatureResult) -> list[dict]:
    """Per block and stage: size, mean/std/min/max of the map, and its Pearson correlation
    with the input map (1 = the stage kept the spatial pattern of F)."""
    rows = []
    for maps in result.blocks.values():
        base = maps.maps["input"].ravel()
        for stage, array in maps.maps.items():
            flat = array.ravel()
            corr = (float(np.corrcoef(base, flat)[0, 1])
                    if flat.std() > 0 and base.std() > 0 else float("nan"))
            rows.append(dict(block=maps.block, stage=stage, note=maps.notes.get(stage, ""),
                             stride=maps.stride, channels=maps.channels, height=array.shape[0],
                             width=array.shape[1], mean=float(array.mean()),
                             std=float(array.std()), min=float(array.min()),
                             max=float(array.max()), corr_with_input=corr))
    return rows


def save_features(result: FeatureResult, out_dir: str | os.PathLike, cmap: str = "viridis",
                  title: str = "", stem: str = "features") -> dict[str, Path]:
    """Write ``features.png``, ``features.csv`` (map statistics) and ``features.npz`` (maps
    and images)."""
    out = Path(out_dir)
    paths = {"png": save_figure(plot_features(result, cmap, title), out / f"{stem}.png")}
    paths["csv"] = write_csv(out / f"{stem}.csv", map_stats(result))
    arrays = {f"{b}/{s}": m for b, maps in result.blocks.items() for s, m in maps.maps.items()}
    arrays |= {"degraded": result.degraded, "restored": result.restored}
    if result.clean is not None:
        arrays["clean"] = result.clean
    paths["npz"] = out / f"{stem}.npz"
    np.savez_compressed(paths["npz"], task=result.task, name=result.name, **arrays)
    return paths
