"""Time onnxruntime against PyTorch (CPU) on the full-size DFPIR folded for one task.

    dfpir benchmark_onnx --threads 2 --repeats 3 --sizes 128x128 1280x720

Random weights (timing does not depend on them), the hashed prompt for derain folded in.
The two runtimes are timed in turn, ``--repeats`` times per size, and the medians reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..models import DFPIR, DFPIRConfig
from ..outputs import check_output_place
from ..prompts import HashedEncoder, prompt_sentence
from ..restore.onnx_export import TaskModel, export_onnx, fold_prompt
from ..restore.onnx_runtime import OnnxRestorer
from .common import int_in, run_cli


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir benchmark_onnx`` / ``scripts/benchmark_onnx.py``."""
    parser = argparse.ArgumentParser(prog=prog or "benchmark_onnx.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int_in(1), default=2)
    parser.add_argument("--repeats", type=int_in(1), default=3)
    parser.add_argument("--sizes", nargs="+", type=size, default=[(128, 128), (1280, 720)],
                        help="WxH (default: 128x128 1280x720)")
    parser.add_argument("--warmup", type=int_in(0), default=1,
                        help="untimed runs of each first")
    parser.add_argument("--onnx", help="reuse (or write) this ONNX file")
    return parser


def size(text: str) -> tuple[int, int]:
    """``WxH`` with whole numbers >= 8, for argparse."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 1280x720, got {text!r}"
                                         ) from None
    if min(width, height) < 8:
        raise argparse.ArgumentTypeError(f"expected a width and height >= 8, got {text}")
    return width, height


def run(args: argparse.Namespace) -> int:
    """Export (or reuse) the folded model, then time both runtimes in turn."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = DFPIR(DFPIRConfig()).eval()
    prompt = HashedEncoder().encode([prompt_sentence("derain")])[0]
    with tempfile.TemporaryDirectory(prefix="dfpir_bench_onnx_") as folder:
        path = Path(args.onnx or Path(folder) / "derain.onnx")
        return _time(args, model, prompt, path)


def _time(args: argparse.Namespace, model: DFPIR, prompt: torch.Tensor, path: Path) -> int:
    if args.onnx and not path.exists():
        check_output_place(path, "file", "--onnx")
    if not path.exists():
        start = time.perf_counter()
        export_onnx(TaskModel(fold_prompt(model, prompt), {"format": "dfpir-task-v1",
                                                           "task": "derain"}), path)
        print(f"export: {time.perf_counter() - start:.1f} s, {path.stat().st_size / 2**20:.1f} MiB")
    runner = OnnxRestorer(path, threads=args.threads)
    print(f"threads {args.threads}, repeats {args.repeats}, torch {torch.__version__}")
    for width, height in args.sizes:
        x = torch.rand(1, 3, height, width)
        times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        with torch.inference_mode():
            for _ in range(args.warmup):
                model(x, prompt)
                runner.run(x.numpy())
            for _ in range(args.repeats):
                start = time.perf_counter()
                expected = model(x, prompt)
                times["torch"].append(time.perf_counter() - start)
                start = time.perf_counter()
                got = runner.run(x.numpy())
                times["onnxruntime"].append(time.perf_counter() - start)
        diff = float(np.abs(got - expected.numpy()).max())
        row = {k: statistics.median(v) for k, v in times.items()}
        print(f"{width}x{height}: torch {row['torch']:.3f} s, onnxruntime "
              f"{row['onnxruntime']:.3f} s (median of {args.repeats}; all: "
              f"{[round(t, 3) for t in times['torch']]} / "
              f"{[round(t, 3) for t in times['onnxruntime']]}), max abs diff {diff:.1e}",
              flush=True)
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir benchmark_onnx``."""
    return run_cli(build_parser(prog), run, argv)
