"""A local web page to restore photos with a trained model (gradio; pip install -e ".[app]").

    python scripts/app.py                          # the demo model, runs/demo/checkpoints/latest.pt
    python scripts/app.py --ckpt runs/five_task/checkpoints/stage2_finetune.pt --tile 512
    python scripts/app.py --onnx derain.onnx       # a per-task export: no torch model, no CLIP

Serves http://127.0.0.1:7860 (this machine only; --host/--port to change, --share for a public
link). See the README ("App"); the work is done by ``dfpir.app``.
"""

import sys

from dfpir.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
