"""``dfpir rank`` (``scripts/rank.py``): rank evaluation runs (e.g. the ablations) into the
paper's Table 3 (a) and (b).

    dfpir rank results/ablation_* --out results/table3.md
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..eval.tables import RESULTS_JSON, load_run, table3_report
from ..outputs import claim_file, place_keys, replaced
from .common import run_cli

__all__ = ["build_parser", "main", "run"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir rank`` / ``scripts/rank.py``."""
    parser = argparse.ArgumentParser(
        prog=prog or "rank.py",
        description="Rank evaluation folders (written by scripts/eval.py) into the paper's "
                    "Table 3 (a) (modules) and (b) (gamma), beside the paper's numbers.",
    )
    parser.add_argument("runs", nargs="+", help="evaluation result folders (or results.json)")
    parser.add_argument("--out", help="also write the Markdown to this file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the --out file when it exists (without it: an error)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Print (and optionally write) Table 3."""
    if args.out:
        claim_file(args.out, "--out", args.overwrite)
        inputs = {k for f in args.runs
                  for k in place_keys(Path(f) / RESULTS_JSON if Path(f).is_dir() else Path(f))}
        if inputs & set(place_keys(Path(args.out))):  # not even --overwrite: an input (a link)
            raise ConfigError(f"--out {args.out} is one of the results it ranks; choose another "
                              "file")
    runs = [load_run(folder) for folder in args.runs]
    text = table3_report(runs)
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with replaced(args.out) as tmp:  # a new file, never written through a link
            tmp.write_text(text, encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir rank``: exit status 2 when a folder is not an evaluation result."""
    return run_cli(build_parser(prog), run, argv)
