"""Training-crop throughput with and without the decode cache, on generated GoPro-sized frames.

    python scripts/benchmark_data.py [--images 8] [--samples 200] [--patch 128]

A shim kept so the documented commands work: the command is ``dfpir benchmark_data``
(``dfpir.cli.benchmark_data``); see ``python scripts/benchmark_data.py --help``.
"""

import sys

from dfpir.cli.benchmark_data import main

if __name__ == "__main__":
    sys.exit(main())
