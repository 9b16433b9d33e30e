"""Parameters, FLOPs and speed of DFPIR and its Restormer baseline.

    python scripts/benchmark.py                                   # both models, CPU, fp32, 2x3x128x128
    python scripts/benchmark.py --device cuda --bf16 --compile --channels-last --batch 8
    python scripts/benchmark.py --models dfpir --flops-only --size 256

A shim kept so the documented commands work: the command is ``dfpir benchmark``
(``dfpir.cli.benchmark``); see ``python scripts/benchmark.py --help``.
"""

import sys

from dfpir.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
