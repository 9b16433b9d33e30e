"""Export a checkpoint: release layout + safetensors, or one task with its prompt folded in.

--out FOLDER writes the release's DFPIR checkpoint layout and safetensors; --task NAME with
--onnx FILE and/or --safetensors FILE writes one degradation with its prompt folded into the
weights (no CLIP needed to run it).

    python scripts/export.py --ckpt runs/five_task/checkpoints/best.pt --out runs/five_task/export_best
    python scripts/export.py --ckpt runs/demo/checkpoints/latest.pt --task derain --onnx derain.onnx
"""

from __future__ import annotations

import argparse
import sys

from dfpir.config import ExperimentConfig, build_dataclass
from dfpir.models import DFPIR
from dfpir.models.checkpoint import CheckpointError, load_weights, read_checkpoint
from dfpir.onnx_export import add_task_export_args, run_task_export
from dfpir.train import export_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by scripts/train.py")
    parser.add_argument("--out", help="output folder (release layout + safetensors)")
    add_task_export_args(parser)
    args = parser.parse_args(argv)
    if args.onnx or args.safetensors:
        return run_task_export(args)
    if not args.out:
        parser.error("give --out FOLDER, or --task NAME with --onnx FILE and/or --safetensors FILE")
    try:
        ckpt = read_checkpoint(args.ckpt)
        if "config" not in ckpt:
            raise CheckpointError(f"{args.ckpt} holds no config: not written by scripts/train.py")
        cfg = build_dataclass(ExperimentConfig, ckpt["config"])
        model = DFPIR(cfg.model)
        load_weights(model, ckpt)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    epoch = int(ckpt.get("progress", {}).get("epoch", 0))
    for kind, path in export_weights(model, args.out, epoch).items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
