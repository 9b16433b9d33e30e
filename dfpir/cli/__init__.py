"""The command line: ``dfpir <command> [options]``, one module per command.

    dfpir train     --config configs/demo.yaml
    dfpir eval      --config configs/demo.yaml --ckpt runs/demo/checkpoints/latest.pt
    dfpir restore   --ckpt CKPT --input photos/ --degradation derain
    dfpir prepare   --check --config configs/three_task.yaml
    dfpir visualize all --ckpt CKPT --out figures
    dfpir benchmark | export | rank | export_prompts | benchmark_data | device_report
    dfpir compare_release --release-dir ../DFPIR

``scripts/<name>.py`` are shims over the same modules. The same flag means the same thing in
every command (``--config``, ``--set``, ``--ckpt``, ``--device``, ``--out``, ``--debug``); a user
error prints ``error: ...`` and exits with status 2 (``dfpir.cli.common.run_cli``).
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import version

__all__ = ["COMMANDS", "main"]

# command -> (module in dfpir.cli, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train DFPIR from a YAML config (one device or torchrun)"),
    "eval": ("eval", "evaluate a checkpoint on a config's test sets, write the paper's tables"),
    "restore": ("restore", "restore your own images with a trained model"),
    "prepare": ("prepare", "check the datasets of a config; fill the decode cache"),
    "visualize": ("visualize", "the paper's analysis figures and a restoration grid"),
    "benchmark": ("benchmark", "parameters, FLOPs and speed of DFPIR and Restormer"),
    "export": ("export", "export a checkpoint (release layout, safetensors) or one task with "
               "its prompt folded in (ONNX, safetensors)"),
    "rank": ("rank", "rank evaluation folders into the paper's Table 3"),
    "export_prompts": ("export_prompts", "write a prompt embedding table (encoder: file)"),
    "train_classifier": ("train_classifier", "train the degradation classifier (ours) for "
                         "--degradation auto"),
    "app": ("app", "a local web page to restore photos (gradio; the app extra)"),
    "benchmark_onnx": ("benchmark_onnx", "onnxruntime against PyTorch on the CPU (onnx extra)"),
    "check_prompts": ("check_prompts", "how close the DGCPM channel orders are to changing"),
    "benchmark_data": ("benchmark_data", "training-crop throughput with and without the cache"),
    "benchmark_compile": ("benchmark_compile", "compile time and warm step per train.compile "
                          "mode"),
    "device_report": ("device_report", "throughput, end-to-end training and inference on one "
                      "device (GPU), as a report"),
    "torchrun": ("torchrun", "torchrun whose stop (scancel, a signalled worker) exits 128 + "
                 "the signal, not 1"),
    "compare_release": ("compare_release", "output difference and CPU speed against the "
                        "authors' release model (needs its clone)"),
}


def torch_version() -> str:
    try:
        return version("torch")
    except Exception:  # noqa: BLE001 (a broken install still shows dfpir's version)
        return "not installed"


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: dfpir <command> [options]   (dfpir <command> --help for its options; "
             "dfpir --version)",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dfpir`` console entry point: run one command; returns its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"dfpir {version('dfpir')} (torch {torch_version()})")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"error: unknown command {name!r}{hint}\n{_usage()}", file=sys.stderr)
        return 2
    try:  # Ctrl-C while torch and the command load: a stop like any other, no traceback
        module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
        if name == "visualize":
            return module.main(rest, keep_memory=True, prog=f"dfpir {name}")
        return module.main(rest, prog=f"dfpir {name}")
    except KeyboardInterrupt:
        if "--debug" in rest:
            raise
        print("stopped (Ctrl-C)", file=sys.stderr)
        return 130
