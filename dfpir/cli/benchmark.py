"""``dfpir benchmark`` (``scripts/benchmark.py``): parameters, FLOPs and speed of DFPIR and its
Restormer baseline.

    python scripts/benchmark.py                                   # both models, CPU, fp32, 2x3x128x128
    python scripts/benchmark.py --device cuda --bf16 --compile --channels-last --batch 8
    python scripts/benchmark.py --models dfpir --flops-only --size 256
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from ..device import keep_freed_memory, resolve_device
from ..models import DFPIR, DFPIRConfig
from ..perf.benchmark import benchmark, count_params, forward_flops, markdown_table
from .common import float_in, int_in, run_cli


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir benchmark`` / ``scripts/benchmark.py``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Parameters, FLOPs and speed of DFPIR and its Restormer baseline.")
    parser.add_argument("--models", nargs="+", default=["dfpir", "restormer"],
                        choices=["dfpir", "restormer", "dfpir_reference"],
                        help="dfpir_reference: DFPIR with the release's step-by-step DGCPM "
                             "(expand, reorder, reduce) instead of the fused one")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--size", type=int_in(1), default=128)
    parser.add_argument("--batch", type=int_in(1), default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--warmup", type=int_in(0), default=2)
    parser.add_argument("--iters", type=int_in(1), default=5)
    parser.add_argument("--min-seconds", type=float_in(0), default=0.0,
                        help="time each measurement for at least this long")
    parser.add_argument("--forward-only", action="store_true")
    parser.add_argument("--flops-only", action="store_true", help="parameters and FLOPs only")
    parser.add_argument("--threads", type=int_in(1), default=None, help="torch CPU threads")
    parser.add_argument("--repeats", type=int_in(1), default=2,
                        help="time the models in turn this many times, keep each one's best")
    parser.add_argument("--release-memory", action="store_true",
                        help="CPU: leave glibc's default of returning freed memory to the OS")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(args: argparse.Namespace) -> int:
    """Measure and print the tables."""
    args.device = str(resolve_device(args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.device.startswith("cuda") and not args.release_memory:
        keep_freed_memory()

    configs = {"dfpir": DFPIRConfig(), "restormer": DFPIRConfig.restormer(),
               "dfpir_reference": DFPIRConfig()}
    models = {}
    for name in args.models:
        torch.manual_seed(args.seed)
        models[name] = DFPIR(configs[name])
        if name == "dfpir_reference":
            for block in models[name].dgpbs().values():
                block.dgcpm.forward = block.dgcpm.forward_reference
        if args.flops_only:
            flops = forward_flops(models[name], args.size, args.batch)
            print(f"{name}: {count_params(models[name]):,} parameters, "
                  f"{flops / 1e9:.1f} GFLOPs forward at {args.batch}x3x{args.size}x{args.size}")
    if args.flops_only:
        return 0
    by_name = {}
    for repeat in range(args.repeats):
        for name, model in models.items():
            r = benchmark(
                model, name, args.device, args.size, args.batch, args.bf16, args.channels_last,
                args.compile, args.warmup, args.iters, args.min_seconds, not args.forward_only,
            )
            print(f"repeat {repeat + 1}: " + markdown_table([r]).splitlines()[-1], flush=True)
            best = by_name.get(name)
            if best is None or (r.train_ips or r.forward_ips) > (best.train_ips or best.forward_ips):
                by_name[name] = r
    print(f"\nbest of {args.repeats}:")
    print(markdown_table(list(by_name.values())))
    if "dfpir" in by_name and "restormer" in by_name and not args.forward_only:
        d, r = by_name["dfpir"], by_name["restormer"]
        print(f"\nDFPIR / Restormer time ratio: forward {r.forward_ips / d.forward_ips:.3f}, "
              f"forward+backward {r.train_ips / d.train_ips:.3f}; "
              f"FLOP ratio {d.forward_flops / r.forward_flops:.3f}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir benchmark``: 0, or 2 for a bad device."""
    return run_cli(build_parser(prog), run, argv)
