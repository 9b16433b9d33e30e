"""Rank evaluation runs (e.g. the ablations) into the paper's Table 3 (a) and (b).

    python scripts/rank.py results/ablation_*            # prints Markdown
    python scripts/rank.py results/ablation_* --out results/table3.md

Each argument is a folder written by scripts/eval.py; the work is done by ``dfpir.tables``.
"""

import sys

from dfpir.tables import main

if __name__ == "__main__":
    sys.exit(main())
