"""Write docs/cli.md from the argument parsers of every ``dfpir`` command, so the CLI reference
cannot drift from the code (``tests/test_docs.py`` fails when the committed page is stale).

    python tools/cli_reference.py            # rewrite docs/cli.md
    python tools/cli_reference.py --check    # exit 1 if docs/cli.md is stale
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from dfpir.cli import COMMANDS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser ``dfpir <name>`` uses (each command module's ``build_parser``)."""
    module = importlib.import_module(f"dfpir.cli.{COMMANDS[name][0]}")
    return module.build_parser(prog=f"dfpir {name}")


def _help(parser: argparse.ArgumentParser) -> str:
    os.environ["COLUMNS"] = "100"  # the same wrapping on every machine and terminal
    text = parser.format_help()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subs:
        for sub_name, sub in action.choices.items():
            text += f"\n--- {parser.prog} {sub_name} ---\n\n{sub.format_help()}"
    return text


def render() -> str:
    """The whole page: one section per command, its ``--help`` text verbatim."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    parts = ["# CLI reference\n",
             "Generated from the commands' own argument parsers by `python tools/cli_reference.py`;",
             "do not edit by hand. `dfpir <command>` and `python scripts/<command>.py` take the same",
             f"options (`scripts/prepare_data.py` is `dfpir prepare`). Generated with Python {version}.\n"]
    for name, (_, summary) in COMMANDS.items():
        parts += [f"## dfpir {name}\n", f"{summary}.\n", "```text", _help(command_parser(name)).rstrip(),
                  "```\n"]
    return "\n".join(parts)


def write_or_check(page: Path, render_page, tool: str, argv: list[str] | None = None) -> int:
    """The command line of a generated page: write ``render_page()`` to ``page``, or with
    ``--check`` exit 1 when the committed page differs from it."""
    args = argparse.ArgumentParser(description=f"Write or check docs/{page.name}.")
    args.add_argument("--check", action="store_true",
                      help=f"exit 1 when docs/{page.name} is stale")
    opts = args.parse_args(argv)
    text = render_page()
    if opts.check:
        stale = not page.exists() or page.read_text() != text
        print(f"{page} is {f'stale: run python tools/{tool}' if stale else 'current'}")
        return int(stale)
    page.write_text(text)
    print(f"wrote {page}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return write_or_check(PAGE, render, "cli_reference.py", argv)


if __name__ == "__main__":
    sys.exit(main())
