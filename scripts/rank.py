"""Rank evaluation runs (e.g. the ablations) into the paper's Table 3 (a) and (b).

    python scripts/rank.py results/ablation_*            # prints Markdown
    python scripts/rank.py results/ablation_* --out results/table3.md

A shim kept so the documented commands work: the command is ``dfpir rank``
(``dfpir.cli.rank``); see ``python scripts/rank.py --help``.
"""

import sys

from dfpir.cli.rank import main

if __name__ == "__main__":
    sys.exit(main())
