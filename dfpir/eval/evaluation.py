"""Evaluate a checkpoint on the test sets of a config (the paper's protocol).

The pieces live by concern: ``dfpir.loading`` (checkpoint -> model and config, the one
precedence rule), ``dfpir.eval_loop`` (restore and score a test set, shared with validation
during training), ``dfpir.report`` (the results folder) and ``dfpir.cli.eval`` (the command
line). This module joins them in ``evaluate``; the old names are re-exported from here.

    python scripts/eval.py --config configs/three_task.yaml --ckpt dfpir3.ckpt --out results/d3

Every image of every test set is restored with its task's prompt, whole (the protocol) or tiled,
and scored with ``dfpir.metrics`` (clipped, float, scikit-image PSNR/SSIM on RGB). The results
folder holds ``results.md`` (the paper's Table 1 or 2 layout with the paper's DFPIR, or for the
baseline Restormer, number and the difference beside each of ours), ``results.csv``,
``results.json`` (everything, including the model config, read by ``scripts/rank.py``),
``per_image.csv`` and, with ``--save-images``, ``images/<set>/<name>.png``.

Checkpoints: ours (``{"model": ..., "config": ...}``; the architecture is taken from the stored
config), the released DFPIR ones and the released Restormer ones (which need no prompt: the
model becomes the baseline). See ``dfpir.loading`` for how YAML, ``--set`` and the checkpoint
combine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..config import ConfigError, ExperimentConfig
from ..data import build_test_datasets
from ..data.tasks import TASKS
from ..device import resolve_device
from ..loading import (
    LoadedModel,
    load_model,
    say_notes,
    select_model_config,
    stored_model_config,
)
from ..models.orders import check_prompt_record
from ..models.precision import set_backend_precision
from ..prompts import PromptBank, build_encoder
from .blind import BlindReport, PromptMatrix, evaluate_blind, prompt_matrix
from .loop import ImageResult, SetResult, evaluate_set
from .report import EvalReport, report_dict, write_report
from .tables import PAPER_LAYOUTS, choose_paper_table, paper_scores, results_table

__all__ = [
    "EvalReport",
    "ImageResult",
    "LoadedModel",
    "SetResult",
    "evaluate",
    "evaluate_set",
    "load_model",
    "report_dict",
    "select_model_config",
    "stored_model_config",
    "write_report",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ evaluation


def _prompt_for(bank: PromptBank | None, task: str, device: torch.device) -> torch.Tensor | None:
    return None if bank is None else bank([task], device)[0]


def evaluate(
    cfg: ExperimentConfig,
    checkpoint: str | os.PathLike,
    *,
    overrides: Sequence[str] = (),
    max_images: int = 0,
    amp: str | None = None,
    paper_table: str = "auto",
    paper_row: str = "auto",
    image_dir: str | os.PathLike | None = None,
    name: str = "",
    progress: bool = True,
    loaded: LoadedModel | None = None,
    classifier: str | os.PathLike | None = None,
    with_prompt_matrix: bool = False,
) -> EvalReport:
    """Evaluate ``checkpoint`` on the test sets of ``cfg`` (``cfg.eval`` gives tile, overlap,
    quantize and device; ``image_dir`` receives the restored images when given).

    ``overrides`` are the ``--set`` entries already applied to ``cfg``; their ``model.*`` ones
    are re-applied on top of a config stored in the checkpoint. ``paper_table``: "auto", a key
    of ``PAPER_LAYOUTS`` or "none"; ``paper_row``: "auto" (DFPIR, or Restormer for the baseline)
    or a row of that table. ``loaded``: the model ``dfpir.loading.load_experiment`` built
    (what the command line passes); without it the checkpoint is read here. Blind
    restoration (ours): with a degradation classifier in the checkpoint (or in the file
    ``classifier``) the report also has its accuracy, confusion and the blind scores;
    ``with_prompt_matrix`` restores every set with every prompt as well.
    """
    device = resolve_device(cfg.eval.device)
    set_backend_precision(cfg.eval.tf32, cfg.eval.cudnn_benchmark)
    if loaded is None:
        loaded = load_model(checkpoint, cfg.model, overrides, device)
    else:
        loaded.model.to(device)
    say_notes(loaded.notes, logger)
    _warn_prompt_mismatch(loaded.stored_config, cfg)
    datasets = build_test_datasets(cfg.data)
    if not datasets:
        raise ConfigError("the config names no test set (data.test_sets is empty and the "
                          "built-in set is off)")
    table = _paper_table(paper_table, list(datasets), [t.task for t in cfg.data.train_tasks])
    row = paper_row if paper_row != "auto" else ("DFPIR" if loaded.config.has_dgpb
                                                 else "Restormer")
    if table is not None:
        try:
            paper_scores(table, row)
        except KeyError as err:
            raise ConfigError(err.args[0]) from None
    bank, clf = None, None
    if loaded.config.has_dgpb:
        clf = _blind_classifier(loaded, classifier)
        encoder = build_encoder(cfg.prompts, device=device)
        tasks = list(dict.fromkeys(d.task for d in datasets.values()))
        if clf is not None or with_prompt_matrix:
            tasks = _matrix_prompts(cfg, tasks, clf)
        bank = PromptBank(encoder, tasks, cfg.prompts.style)
        if bank.embeddings.shape[-1] != loaded.config.prompt_dim:
            raise ConfigError(f"the prompt encoder gives {bank.embeddings.shape[-1]}-d "
                              f"embeddings, the model expects {loaded.config.prompt_dim}")
        if loaded.orders is not None:
            current = dict(zip(bank.names, bank.embeddings, strict=True))
            for note in check_prompt_record(loaded.model, loaded.orders, current):
                logger.warning("note: %s", note)
    out_images = Path(image_dir) if image_dir is not None else None
    sets = []
    for set_name, dataset in datasets.items():
        sets.append(evaluate_set(
            loaded.model, dataset, set_name, _prompt_for(bank, dataset.task, device),
            device=device, tile=cfg.eval.tile, overlap=cfg.eval.tile_overlap,
            quantize=cfg.eval.quantize, amp=amp, max_images=max_images, image_dir=out_images,
            num_workers=cfg.data.num_workers, progress=progress,
        ))
    comparison = results_table({s.name: (s.psnr, s.ssim) for s in sets}, table, row)
    blind, matrix = _blind_extras(loaded.model, datasets, sets, bank, clf, with_prompt_matrix,
                                  cfg, device, amp, max_images)
    options = {
        "tile": cfg.eval.tile,
        "tile_overlap": cfg.eval.tile_overlap,
        "quantize": cfg.eval.quantize,
        "amp": amp or "none",
        "device": str(device),
        "max_images": max_images,
        "data_seed": cfg.data.seed,
        "test_noise": cfg.data.test_noise,
        "data_root": cfg.data.data_root,
    }
    prompts = ({"encoder": cfg.prompts.encoder, "style": cfg.prompts.style}
               if bank is not None else {"encoder": "none (baseline)", "style": ""})
    return EvalReport(
        name=name or Path(checkpoint).stem,
        checkpoint=str(checkpoint),
        layout=loaded.layout,
        config_source=loaded.config_source,
        model=loaded.config,
        parameters=sum(p.numel() for p in loaded.model.parameters()),
        prompts=prompts,
        options=options,
        sets=sets,
        comparison=comparison,
        notes=list(loaded.notes),
        blind=blind,
        prompt_matrix=matrix,
    )


def _blind_classifier(loaded: LoadedModel, classifier: str | os.PathLike | None):
    """The degradation classifier for the blind row: the file given, else the one the
    checkpoint stores (read with the weights: the checkpoint is read once)."""
    from ..blind import classifier_from_checkpoint, load_classifier

    if classifier is not None:
        return load_classifier({}, None, classifier)
    return classifier_from_checkpoint({"classifier": loaded.classifier_state},
                                      loaded.checkpoint)


def _matrix_prompts(cfg: ExperimentConfig, test_tasks: list[str], clf) -> list[str]:
    """Every prompt the model knows: the config's training tasks, the test sets' and the
    classifier's classes, in the registry's order."""
    tasks = set(test_tasks) | {t.task for t in cfg.data.train_tasks}
    if cfg.data.builtin.enabled:
        tasks |= set(cfg.data.builtin.tasks)
    if clf is not None:
        tasks |= set(clf.classes)
    return [t for t in TASKS if t in tasks]


def _blind_extras(model, datasets, sets, bank, clf, with_matrix, cfg, device, amp, max_images
                  ) -> tuple[BlindReport | None, PromptMatrix | None]:
    if bank is None:
        if with_matrix:
            logger.info("note: the Restormer baseline takes no prompt; no prompt matrix")
        return None, None
    kwargs = dict(device=device, tile=cfg.eval.tile, overlap=cfg.eval.tile_overlap,
                  quantize=cfg.eval.quantize, amp=amp, max_images=max_images)
    prompt_of = lambda task: _prompt_for(bank, task, device)  # noqa: E731
    blind = None
    if clf is not None:
        oracle = {s.name: [(r.psnr, r.ssim) for r in s.images] for s in sets}
        blind = evaluate_blind(model, clf, datasets, oracle, prompt_of, **kwargs)
        logger.info("classifier accuracy %.1f%% (%d/%d images)", 100 * blind.accuracy,
                    blind.correct, blind.total)
    matrix = None
    if with_matrix:
        matrix = prompt_matrix(model, datasets, bank.names, prompt_of, **kwargs)
    return blind, matrix


def _paper_table(choice: str, names: list[str], train_tasks: list[str]) -> str | None:
    if choice == "auto":
        return choose_paper_table(names, train_tasks)
    if choice == "none":
        return None
    if choice not in PAPER_LAYOUTS:
        raise ConfigError(f"unknown paper table {choice!r}; expected auto, none or one of "
                          f"{list(PAPER_LAYOUTS)}")
    return choice


def _warn_prompt_mismatch(stored: Mapping | None, cfg: ExperimentConfig) -> None:
    prompts = stored.get("prompts") if isinstance(stored, Mapping) else None
    if not isinstance(prompts, Mapping):
        return
    for key in ("encoder", "style"):
        trained = prompts.get(key)
        if trained is not None and trained != getattr(cfg.prompts, key):
            logger.warning("warning: the checkpoint was trained with prompts.%s=%s but this "
                           "evaluation uses %s (set --set prompts.%s=%s to match)", key, trained,
                           getattr(cfg.prompts, key), key, trained)


