"""A local web page to restore photos: ``python scripts/app.py --ckpt CKPT`` (gradio).

Upload one or more images (8/16-bit, grey, RGBA, any size), choose the degradation, compare
input and output side by side and with a before/after slider, download the results as PNG in
the input's format (16-bit kept). Images larger than the tile size are restored in tiles with
a progress bar. Bad files get a message on the page; the others are still restored.

The restoring is the library's: ``dfpir.restore`` (prepare_image / finish_image, prompts),
``dfpir.inference.restore`` (tiling), ``dfpir.evaluate.load_model``; or, for a per-task ONNX
export, ``dfpir.onnx_runtime``. Gradio is an optional extra: ``pip install -e ".[app]"``.

Blind restoration ("auto") plugs in at ``blind_classifier``: it returns the classifier of a
loaded bundle, or None and the reason, which the page shows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from ..data import DataError, read_image_raw, write_image
from ..restore import (
    PreparedImage,
    finish_image,
    frame_count,
    prepare_image,
    prompt_embedding,
    unique_path,
)
from ..restore.inference import restore, tile_starts

__all__ = [
    "AUTO",
    "DEMO_CHECKPOINT",
    "LeftAsItIs",
    "ModelBundle",
    "RestoredImage",
    "blind_classifier",
    "build_app",
    "close_app",
    "degradation_choices",
    "load_bundle",
    "restore_image",
    "require_gradio",
    "restore_uploads",
]

#: The checkpoint the Quickstart's demo run writes; the app opens it when no --ckpt is given.
DEMO_CHECKPOINT = Path("runs/demo/checkpoints/latest.pt")
#: The choice that lets a blind classifier pick the degradation.
AUTO = "auto"
#: The choice of a model that takes no prompt (the Restormer baseline).
NO_PROMPT = "none (this model takes no prompt)"

Progress = Callable[[int, int], None]


@dataclass
class ModelBundle:
    """A loaded model and how the page uses it: a PyTorch checkpoint or a per-task ONNX file."""

    source: str
    device: torch.device
    tile: int = 512
    overlap: int = 32
    loaded: object | None = None  # dfpir.evaluate.LoadedModel
    cfg: object | None = None  # dfpir.config.ExperimentConfig (prompts)
    onnx: object | None = None  # dfpir.onnx_runtime.OnnxRestorer
    classifier: object | None = None  # dfpir.blind.DegradationClassifier stored with the model
    prompts: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def takes_prompt(self) -> bool:
        return self.onnx is None and bool(self.loaded.config.has_dgpb)

    def describe(self) -> str:
        if self.onnx is not None:
            return (f"ONNX export `{self.source}` (onnxruntime, task "
                    f"{self.onnx.task}: \"{self.onnx.sentence}\")")
        cfg = self.loaded.config
        return (f"checkpoint `{self.source}` ({self.loaded.layout}, dim {cfg.dim}, "
                f"{'prompt encoder ' + self.cfg.prompts.encoder if self.takes_prompt else 'no prompt'})")


def load_bundle(ckpt: str | os.PathLike | None = None, onnx: str | os.PathLike | None = None,
                config: str | os.PathLike | None = None, overrides: Sequence[str] = (),
                device: str = "auto", tile: int = 512, overlap: int = 32,
                threads: int | None = None) -> ModelBundle:
    """Load a checkpoint as ``scripts/restore.py`` does (or an ONNX export) for the page.

    Raises ``CheckpointError``/``ConfigError``/``PromptError``/``OnnxModelError`` (all
    ``ValueError``s) with a one-line reason.
    """
    if tile < 0 or overlap < 0:
        raise ConfigError(f"--tile and --tile-overlap must be >= 0 (--tile 0: whole images), "
                          f"got {tile} and {overlap}")
    if tile and overlap >= tile:
        raise ConfigError(f"--tile {tile} must be larger than --tile-overlap {overlap} (its "
                          "default is 32): give a larger --tile or a smaller --tile-overlap")
    if onnx is not None:
        from ..restore.onnx_runtime import OnnxRestorer

        return ModelBundle(str(onnx), torch.device("cpu"), tile, overlap,
                           onnx=OnnxRestorer(onnx, threads=threads))
    from ..blind import classifier_from_checkpoint
    from ..loading import load_experiment
    from ..models.checkpoint import read_checkpoint

    raw = read_checkpoint(ckpt)
    loaded = load_experiment(raw, config, overrides, device, name=str(ckpt))
    resolved = next(loaded.model.parameters()).device
    return ModelBundle(str(ckpt), resolved, tile, overlap, loaded=loaded, cfg=loaded.cfg,
                       classifier=classifier_from_checkpoint(raw, str(ckpt)))


class LeftAsItIs(ValueError):
    """"auto" leaves this image as it is (it looks clean, or the prediction is unsure): nothing
    is written for it and its message says why."""


def blind_classifier(bundle: ModelBundle
                     ) -> tuple[Callable[[np.ndarray], tuple[str | None, str]] | None, str]:
    """For "auto": the bundle's blind degradation classifier (an HxWx3 float image -> the
    degradation name, ``None`` to leave the image as it is, and a line saying how sure it is)
    and a note, or ``(None, why there is none)``. The page offers "auto" first when there is
    one."""
    from ..blind import choose_degradation, is_grey

    if bundle.onnx is not None:
        return None, "an ONNX export restores one fixed degradation"
    if not bundle.takes_prompt:
        return None, "this model takes no prompt"
    if bundle.classifier is None:
        return None, ("this checkpoint has no blind degradation classifier (dfpir "
                      "train_classifier adds one), so the degradation must be chosen")

    def classify(rgb: np.ndarray) -> tuple[str | None, str]:
        choice = choose_degradation(bundle.classifier.predict(rgb),
                                    bundle.classifier.config.if_unsure, is_grey(rgb))
        return choice.degradation, choice.message

    return classify, "the degradation classifier stored with the model picks the prompt"


def _trained_tasks(stored: Mapping | None) -> list[str]:
    """The degradations a checkpoint of ours was trained on, from its stored config."""
    from ..prompts import DEGRADATIONS

    data = stored.get("data") if isinstance(stored, Mapping) else None
    if not isinstance(data, Mapping):
        return []
    tasks = [t.get("task") for t in data.get("train_tasks") or [] if isinstance(t, Mapping)]
    builtin = data.get("builtin")
    if isinstance(builtin, Mapping) and builtin.get("enabled"):
        tasks += list(builtin.get("tasks") or [])
    return [t for t in dict.fromkeys(tasks) if t in DEGRADATIONS]


def degradation_choices(bundle: ModelBundle) -> list[str]:
    """What the page's degradation menu offers for this bundle: "auto" (when
    ``blind_classifier`` has one), then the trained degradations (all known ones when the
    checkpoint does not say); the exported task for ONNX; a "none" entry for the baseline."""
    from ..prompts import DEGRADATIONS

    if bundle.onnx is not None:
        return [bundle.onnx.task]
    if not bundle.takes_prompt:
        return [NO_PROMPT]
    names = _trained_tasks(bundle.loaded.stored_config) or list(DEGRADATIONS)
    classifier, _ = blind_classifier(bundle)
    return ([AUTO] if classifier is not None else []) + names


class _CountCalls(nn.Module):
    """Wraps the model to report each forward (one per tile) to ``progress``."""

    def __init__(self, model: nn.Module, total: int, progress: Progress | None) -> None:
        super().__init__()
        self.model, self.total, self.progress, self.done = model, total, progress, 0
        self.config = getattr(model, "config", None)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor | None) -> torch.Tensor:
        out = self.model(x, prompt)
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)
        return out


def _tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    if tile <= 0 or (height <= tile and width <= tile):
        return 1
    tile = -(-tile // 8) * 8
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


@dataclass
class RestoredImage:
    """One restored upload: the output in the input's format and 8-bit previews."""

    output: np.ndarray  # as finish_image writes it (uint8/uint16, grey/RGB/RGBA)
    before: np.ndarray  # uint8 HxWx3 preview
    after: np.ndarray  # uint8 HxWx3 preview
    degradation: str
    notes: list[str]


def _prompt(bundle: ModelBundle, name: str) -> torch.Tensor:
    if name not in bundle.prompts:
        bundle.prompts[name], _ = prompt_embedding(bundle.cfg, name, device=bundle.device)
    return bundle.prompts[name]


def restore_image(bundle: ModelBundle, raw: np.ndarray, choice: str,
                  progress: Progress | None = None) -> RestoredImage:
    """Restore one image array (as ``read_image_raw`` returns it) with the chosen degradation."""
    prepared: PreparedImage = prepare_image(raw)
    name = choice
    if choice == AUTO:
        classifier, why = blind_classifier(bundle)
        if classifier is None:
            raise ValueError(f"'auto' is not available: {why}")
        name, message = classifier(prepared.rgb)
        if name is None:
            raise LeftAsItIs(f"auto: {message}")
        prepared.notes.append(f"auto: {message}")
    if bundle.onnx is not None:
        rgb = bundle.onnx.restore(prepared.rgb, bundle.tile, bundle.overlap, progress)
    else:
        prompt = _prompt(bundle, name) if bundle.takes_prompt else None
        height, width = prepared.rgb.shape[:2]
        model = _CountCalls(bundle.loaded.model,
                            _tile_count(height, width, bundle.tile, bundle.overlap), progress)
        image = torch.from_numpy(prepared.rgb.transpose(2, 0, 1).copy()).to(bundle.device)
        out = restore(model, image, prompt, tile=bundle.tile, overlap=bundle.overlap)
        rgb = out.cpu().numpy().transpose(1, 2, 0)
    return RestoredImage(finish_image(rgb, prepared), _preview(prepared.rgb), _preview(rgb),
                         name, list(prepared.notes))


def _preview(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def restore_uploads(bundle: ModelBundle, paths: Sequence[str | os.PathLike], choice: str,
                    out_dir: str | os.PathLike, progress: Progress | None = None
                    ) -> tuple[list[RestoredImage], list[Path], list[str]]:
    """Restore uploaded files into ``out_dir/<stem>_restored.png``: (results, written files,
    one message per file). A file that cannot be read or restored, or that "auto" leaves as it
    is, gets a message; the others go on."""
    results, written, messages = [], [], []
    out_dir = Path(out_dir)
    taken: set[str] = set()  # same.jpg and same.png: two files, not one
    for index, path in enumerate(paths):
        path = Path(path)
        try:
            if path.stat().st_size == 0:
                raise DataError("the file is empty")

            def step(done: int, total: int, index: int = index) -> None:
                if progress is not None:
                    progress(index * total + done, len(paths) * total)

            result = restore_image(bundle, read_image_raw(path), choice, step)
            target = unique_path(out_dir / f"{path.stem}_restored.png", taken)
            write_image(target, result.output)
        except LeftAsItIs as err:
            messages.append(f"**{path.name}**: {err}")
            continue
        except (DataError, OSError, ValueError) as err:
            reason = str(err).replace(str(path), path.name)
            messages.append(f"**{path.name}**: not restored: {reason}")
            continue
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            messages.append(f"**{path.name}**: out of GPU memory; restart with a smaller --tile")
            continue
        results.append(result)
        written.append(target)
        height, width = result.output.shape[:2]
        kind = f"{result.output.dtype.itemsize * 8}-bit"
        frames = frame_count(path)
        notes = "; ".join([*result.notes] + ([f"an animation of {frames} frames: only the "
                                               "first was restored"] if frames > 1 else []))
        messages.append(f"**{path.name}**: restored ({width}x{height}, {kind}, "
                        f"{result.degradation})" + (f"; {notes}" if notes else ""))
    return results, written, messages


# ------------------------------------------------------------------ the page


def require_gradio():
    try:
        import gradio as gr
    except ImportError as err:
        raise ConfigError("the app needs gradio: pip install -e \".[app]\"") from err
    return gr


def build_app(bundle: ModelBundle):
    """The gradio page (a ``gr.Blocks``) for a loaded bundle."""
    gr = require_gradio()
    choices = degradation_choices(bundle)
    _, why_no_auto = blind_classifier(bundle)
    auto_line = ("'auto' picks the degradation with the checkpoint's blind classifier."
                 if AUTO in choices else f"'auto' is not offered: {why_no_auto}.")
    tiles = (f"images larger than {bundle.tile} px are restored in {bundle.tile}x{bundle.tile} "
             f"tiles overlapping by {bundle.overlap} px" if bundle.tile else
             "whole images (no tiling)")
    header = (f"## DFPIR: restore photos\n\nModel: {bundle.describe()}. Device: "
              f"**{bundle.device}**. Tile size: **{bundle.tile or 'none'}** ({tiles}). "
              f"{auto_line}\n\nUpload images (PNG, JPEG, TIFF...; 8 or 16-bit, grey, RGBA, any "
              "size), choose the degradation and press Restore. Results download as PNG in the "
              "input's format (16-bit kept).")
    out_root = Path(tempfile.mkdtemp(prefix="dfpir_app_"))
    # gradio keeps each upload (and what it serves) in its cache folder, read when a page or
    # the server is made: inside ours, it goes when the app stops (close_app), with the
    # restorations. Its modules that read the folder once, on import, keep gradio's default.
    import gradio.route_utils  # noqa: F401
    import gradio.routes  # noqa: F401

    previous_cache = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(out_root / "gradio")

    def run(files, choice, progress=gr.Progress()):  # noqa: B008 (gradio's idiom)
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files or []]
        if not paths:
            return None, None, None, None, "Upload at least one image first."
        if choice not in choices:
            return None, None, None, None, (f"{choice!r} is not offered by this model; choose "
                                            f"one of {', '.join(choices)}.")
        out_dir = Path(tempfile.mkdtemp(dir=out_root))
        results, written, messages = restore_uploads(
            bundle, paths, choice, out_dir,
            lambda done, total: progress((done, total), desc="restoring", unit="tiles"))
        if not results:
            return None, None, None, None, "\n\n".join(messages)
        first = results[0]
        return (first.before, first.after, (first.before, first.after),
                [str(p) for p in written], "\n\n".join(messages))

    with gr.Blocks(title="DFPIR restore") as app:
        gr.Markdown(header, elem_id="header")
        with gr.Row():
            files = gr.File(label="Images", file_count="multiple", type="filepath",
                            elem_id="uploads")
            with gr.Column():
                # any value reaches run(), which answers one outside the menu (an API call)
                # on the page instead of gradio printing a traceback on the console
                choice = gr.Dropdown(choices, value=choices[0], label="Degradation",
                                     elem_id="degradation", allow_custom_value=True)
                button = gr.Button("Restore", variant="primary", elem_id="restore")
                status = gr.Markdown(elem_id="status")
        with gr.Row():
            before = gr.Image(label="Input", type="numpy", format="png", interactive=False,
                              height=320, elem_id="before")
            after = gr.Image(label="Restored", type="numpy", format="png", interactive=False,
                             height=320, elem_id="after")
        if hasattr(gr, "ImageSlider"):
            slider = gr.ImageSlider(label="Before / after (drag the handle)", type="numpy",
                                    format="png", interactive=False, height=420,
                                    elem_id="slider")
        else:  # an older gradio: a third image shows the output alone
            slider = gr.Image(label="Restored", type="numpy", interactive=False)
        downloads = gr.File(label="Download (PNG; 16-bit inputs stay 16-bit)",
                            file_count="multiple", interactive=False, elem_id="downloads")
        button.click(run, [files, choice], [before, after, slider, downloads, status])
    app.out_root = out_root
    app.previous_cache = previous_cache
    return app


def close_app(app) -> None:
    """What a stopped app leaves: nothing. Its folder (restorations, gradio's copies of the
    uploads) is removed and gradio's cache setting is the one from before ``build_app``."""
    shutil.rmtree(app.out_root, ignore_errors=True)
    if getattr(app, "previous_cache", None) is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = app.previous_cache
