"""Time onnxruntime against PyTorch (CPU) on the full-size DFPIR folded for one task.

    python scripts/benchmark_onnx.py --threads 2 --repeats 3 --sizes 128x128 1280x720

Random weights (timing does not depend on them), the hashed prompt for derain folded in.
The two runtimes are timed in turn, ``--repeats`` times per size, and the medians reported.
"""

import sys

from dfpir.cli.benchmark_onnx import main

if __name__ == "__main__":
    sys.exit(main())
