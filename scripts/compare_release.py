"""Our DFPIR against the authors' release model on the CPU: output difference and speed.

    python scripts/compare_release.py --release-dir ../DFPIR --size 128 128 --batch 2 --runs 9

A shim kept so the documented commands work: the command is ``dfpir compare_release``
(``dfpir.cli.compare_release``); see ``python scripts/compare_release.py --help``.
"""

import sys

from dfpir.cli.compare_release import main

if __name__ == "__main__":
    sys.exit(main())
