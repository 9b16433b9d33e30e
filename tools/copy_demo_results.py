"""Copy the table the demo printed (``<run>/final_results.md``) into README.md and
docs/getting_started.md, between the ``demo-results`` markers, with the machine it ran on, and
its figure (``<run>/comparison.png``) to docs/figures/demo_comparison.png, so the documented
numbers and picture are the ones the code wrote, never typed or chosen by hand.

    python tools/copy_demo_results.py --run runs/demo --machine "2-core x86_64 Xeon, no GPU"
        [--run runs/demo_amd --machine "2-core AMD EPYC, no GPU"]
"""

from __future__ import annotations

import argparse
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


def demo_block(runs: list[tuple[Path, str]]) -> str:
    """The Markdown put between the markers: for each (final_results.md, machine) pair, where it
    came from, then its table verbatim."""
    parts = [f"Measured on {machine}:\n\n{path.read_text().strip()}" for path, machine in runs]
    return (f"{START}\n<!-- copied by tools/copy_demo_results.py from {runs[0][0].name}; "
            f"do not edit -->\n" + "\n\n".join(parts) + f"\n{END}")


def replace_block(text: str, block: str, where: Path) -> str:
    """``text`` with its one marked block replaced; a ``DfpirError`` when the markers are not
    there exactly once."""
    if len(BLOCK.findall(text)) != 1:
        raise DfpirError(f"{where}: expected one {START} ... {END} block")
    return BLOCK.sub(lambda _: block, text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, action="append",
                        help="the demo's run folder (has final_results.md); repeat it for runs "
                             "of the same config on other machines, the first run's figure is "
                             "copied")
    parser.add_argument("--machine", required=True, action="append",
                        help="the machine the demo ran on, in words; one per --run")
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
    for path, text in new.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    FIGURE.write_bytes(figure.read_bytes())
    print(f"wrote {FIGURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(build_parser(), copy))
