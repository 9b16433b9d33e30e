"""Export a training checkpoint: the release's DFPIR checkpoint layout and safetensors.

    python scripts/export.py --ckpt runs/five_task/checkpoints/best.pt --out runs/five_task/export_best
"""

from __future__ import annotations

import argparse
import sys

from dfpir.config import ExperimentConfig, build_dataclass
from dfpir.models import DFPIR
from dfpir.models.checkpoint import CheckpointError, load_weights, read_checkpoint
from dfpir.train import export_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by scripts/train.py")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
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
