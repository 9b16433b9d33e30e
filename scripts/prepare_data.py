"""Check that the datasets of a config are where it says, and optionally fill the decode cache.

    python scripts/prepare_data.py --check --config configs/three_task.yaml
    python scripts/prepare_data.py --check --decode --config CONFIG.yaml   # decode every image
    python scripts/prepare_data.py --cache /fast/disk/dfpir_cache --config CONFIG.yaml

A shim kept so the documented commands work: the command is ``dfpir prepare``
(``dfpir.cli.prepare``); see ``python scripts/prepare_data.py --help``.
"""

import sys

from dfpir.cli.prepare import main

if __name__ == "__main__":
    sys.exit(main())
