"""One-command device report: model throughput, end-to-end training and inference on this machine.

``run_report`` measures, within a time budget per section:

1. **Model throughput** of DFPIR and the Restormer baseline at 128x128, batch 8 and 32:
   forward and forward+backward images/s, achieved TFLOP/s (CUDA) and peak memory for fp32, bf16
   autocast, bf16 + channels_last and bf16 + ``torch.compile`` (compile time reported apart).
2. **End-to-end training** with ``dfpir.train.Trainer``: the five-task recipe, full model, on a
   generated data root with the real sets' image sizes and formats, at batch 5 (the paper) and
   the largest batch that fits, decode cache off and on: iterations/s, the fraction of the time
   spent waiting for the next batch, and the projected wall time of the paper's three- and
   five-task recipes (the released file lists' image counts, the configs' repeats and stages).
3. **Inference** on a 1280x720 and a 4000x3000 image, whole and tiled, fp32 and bf16: seconds,
   peak memory, and the PSNR of the bf16 output against the fp32 one.

It writes ``device_report.md`` (ready for the README's Speed section) and ``device_report.json``.
``quick=True`` shrinks everything (tiny model, small images, a few iterations) so the whole
report runs on a CPU in seconds; its numbers mean nothing, it proves the code path works.
Out-of-memory errors are caught and reported per row, never fatal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .measure import environment, resolve
from .precision_check import precision
from .report_markdown import markdown
from .settings import MODES, SECTIONS, ReportSettings
from .speed import inference, throughput
from .train_data import REAL_IMAGE_SIZES, RELEASE_TRAIN_IMAGES, recipe_projection, write_data_root
from .train_time import training

__all__ = ["MODES", "REAL_IMAGE_SIZES", "RELEASE_TRAIN_IMAGES", "SECTIONS", "ReportSettings",
           "environment", "inference", "markdown", "precision", "recipe_projection",
           "run_report", "throughput", "training", "write_data_root"]


def run_report(out_dir: str | Path, settings: ReportSettings | None = None,
               config_path: str | Path = "configs/five_task.yaml",
               sections: tuple[str, ...] = SECTIONS,
               progress: Callable[[str], None] | None = None) -> dict:
    """Measure every section and write ``device_report.md`` and ``.json`` in ``out_dir``,
    rewritten after every section and every training run: a lease that ends mid-run leaves a
    report of what was measured."""
    settings = settings or ReportSettings()
    device = resolve(settings.device)
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"settings": dataclasses.asdict(settings), "environment": environment(device),
                    "sections": list(sections)}
    start = time.perf_counter()

    def flush() -> None:
        report["total_s"] = round(time.perf_counter() - start, 1)
        (out_dir / "device_report.json").write_text(json.dumps(report, indent=1, default=str))
        (out_dir / "device_report.md").write_text(markdown(report))

    threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    with contextlib.ExitStack() as stack:
        stack.callback(torch.set_num_threads, threads)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dfpir_report_"))
        flush()
        if "precision" in sections:
            say("precision ...")
            report["precision"] = precision(settings, device)
            flush()
        if "throughput" in sections:
            say("model throughput ...")
            report["throughput"] = throughput(settings, device)
            flush()
        if "training" in sections:
            say("end-to-end training ...")
            report["training"] = {}
            training(settings, device, config_path, Path(tmp), report["training"], flush)
            flush()
        if "inference" in sections:
            say("inference ...")
            report["inference"] = inference(settings, device)
    report["complete"] = True
    flush()
    return report

