"""Copy the table the demo printed (``<run>/final_results.md``) into README.md and
docs/getting_started.md, between the ``demo-results`` markers, with the machine it ran on, and
its figure (``<run>/comparison.png``) to docs/figures/demo_comparison.png; with ``--eval``, the
table of ``dfpir eval`` on the first run's checkpoint into docs/evaluation.md (``demo-eval``
markers), so the documented numbers and pictures are the ones the code wrote, never typed.

    python tools/copy_demo_results.py --run runs/demo --machine "2-core x86_64 Xeon, no GPU"
        [--run runs/demo_amd --machine "2-core AMD EPYC, no GPU"] [--eval results/demo]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from dfpir.cli.common import run_cli
from dfpir.errors import DfpirError

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (ROOT / "README.md", ROOT / "docs" / "getting_started.md")
FIGURE = ROOT / "docs" / "figures" / "demo_comparison.png"  # the README's picture
START, END = "<!-- demo-results:start -->", "<!-- demo-results:end -->"
BLOCK = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
EVAL_PAGE = ROOT / "docs" / "evaluation.md"
EVAL_START, EVAL_END = "<!-- demo-eval:start -->", "<!-- demo-eval:end -->"


def demo_block(runs: list[tuple[Path, str]]) -> str:
    """The Markdown put between the markers: for each (final_results.md, machine) pair, where it
    came from, then its table verbatim."""
    parts = [f"Measured on {machine}:\n\n{path.read_text().strip()}" for path, machine in runs]
    return (f"{START}\n<!-- copied by tools/copy_demo_results.py from {runs[0][0].name}; "
            f"do not edit -->\n" + "\n\n".join(parts) + f"\n{END}")


def replace_block(text: str, block: str, where: Path, start: str = START, end: str = END
                  ) -> str:
    """``text`` with its one marked block replaced; a ``DfpirError`` when the markers are not
    there exactly once."""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if len(pattern.findall(text)) != 1:
        raise DfpirError(f"{where}: expected one {start} ... {end} block")
    return pattern.sub(lambda _: block, text)


def eval_block(results: Path, machine: str) -> str:
    """The evaluation page's block: the command, where and how long the restoring took (the
    sum of per_image.csv's seconds), and the first table of results.md."""
    lines = results.joinpath("results.md").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    with results.joinpath("per_image.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    seconds = sum(float(r["seconds"]) for r in rows)
    return (f"{EVAL_START}\n<!-- copied by tools/copy_demo_results.py from results.md; do not "
            f"edit -->\n`python scripts/eval.py --config configs/demo.yaml --ckpt "
            f"runs/demo/checkpoints/latest.pt --out results/demo` on the model the Quickstart "
            f"trains ({machine}; {seconds:.0f} s restoring its {len(rows)} test images), "
            f"`results/demo/results.md`:\n\n" + "\n".join(lines[first:end]) + f"\n{EVAL_END}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, action="append",
                        help="the demo's run folder (has final_results.md); repeat it for runs "
                             "of the same config on other machines, the first run's figure is "
                             "copied")
    parser.add_argument("--machine", required=True, action="append",
                        help="the machine the demo ran on, in words; one per --run")
    parser.add_argument("--eval", help="the results folder of dfpir eval on the first run's "
                        "checkpoint (its table goes to docs/evaluation.md)")
    return parser


def copy(args: argparse.Namespace) -> int:
    if len(args.run) != len(args.machine):
        raise DfpirError(f"--machine: expected one per --run ({len(args.run)}), "
                         f"got {len(args.machine)}")
    results = [Path(run) / "final_results.md" for run in args.run]
    figure = Path(args.run[0]) / "comparison.png"
    for run, needed in [*zip(args.run, results), (args.run[0], figure)]:
        if not needed.is_file():
            raise DfpirError(f"--run {run}: no {needed.name} there (run the demo first)")
    if not all(machine.strip() for machine in args.machine):
        raise DfpirError("--machine: expected the machine in words, got an empty string")
    block = demo_block([(path, machine.strip()) for path, machine in zip(results, args.machine)])
    new = {path: replace_block(path.read_text(), block, path) for path in TARGETS}  # check all first
    if args.eval:
        if not Path(args.eval, "results.md").is_file():
            raise DfpirError(f"--eval {args.eval}: no results.md there (run dfpir eval first)")
        new[EVAL_PAGE] = replace_block(EVAL_PAGE.read_text(),
                                       eval_block(Path(args.eval),
                                                  args.machine[0].split(";")[0].strip()),
                                       EVAL_PAGE, EVAL_START, EVAL_END)
    for path, text in new.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    FIGURE.write_bytes(figure.read_bytes())
    print(f"wrote {FIGURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(build_parser(), copy))
