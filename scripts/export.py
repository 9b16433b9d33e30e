"""Export a checkpoint: release layout + safetensors, or one task with its prompt folded in.

    python scripts/export.py --ckpt runs/five_task/checkpoints/best.pt --out runs/five_task/export_best
    python scripts/export.py --ckpt runs/demo/checkpoints/latest.pt --task derain --onnx derain.onnx

A shim kept so the documented commands work: the command is ``dfpir export``
(``dfpir.cli.export``); see ``python scripts/export.py --help``.
"""

import sys

from dfpir.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
