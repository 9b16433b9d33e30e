"""The docs cannot drift from the code: every ``dfpir``/``scripts`` command shown in README.md
and docs/ uses only options its parser has, and docs/cli.md is what the parsers print."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import pytest

from dfpir.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import cli_reference  # noqa: E402

PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md")]
SCRIPT_ALIASES = {"prepare_data": "prepare"}
# a command at the start of a line or inline code, after env settings, `time` or `torchrun ...`
START = re.compile(r"^\s*(?:\w+=\S+\s+)*(?:time\s+)?(?:torchrun\s.*?\s)?"
                   r"(dfpir|python -m dfpir|python scripts/\w+\.py)(?=\s|$)")


def _shown_commands(text: str) -> list[str]:
    """Commands in fenced blocks (backslash continuations joined) and in inline code."""
    lines, fence = [], False
    for line in text.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif fence:
            lines.append(line.split(" #", 1)[0])
    lines += re.findall(r"`([^`\n]+)`", text)
    return [line[m.start(1):].strip() for line in lines if (m := START.search(line))]


def _parse(command: str) -> tuple[str, list[str]] | None:
    """(dfpir command name, its arguments), or None for a line that names no command."""
    words = shlex.split(re.sub(r"\[[^\]]*\]|\||<[^>]*>|\.\.\.", " ", command))
    if words[:3] == ["python", "-m", "dfpir"]:
        words = ["dfpir", *words[3:]]
    if words[0] == "python":
        name = Path(words[1]).stem
        return SCRIPT_ALIASES.get(name, name), words[2:]
    return (words[1], words[2:]) if len(words) > 1 and not words[1].startswith("-") else None


def _options(parser: argparse.ArgumentParser, args: list[str]) -> set[str]:
    options = {o for a in parser._actions for o in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub = next((a for a in args if a in action.choices), None)
            assert sub is not None or not args, f"no known sub-command in {args}"
            if sub is not None:
                options |= _options(action.choices[sub], [])
    return options | {"--debug"}


CASES = [(page.name, cmd) for page in PAGES for cmd in _shown_commands(page.read_text())]


def test_the_docs_show_commands():
    assert len(CASES) > 50 and {"README.md", "evaluation.md"} <= {p for p, _ in CASES}


@pytest.mark.parametrize(("page", "command"), CASES)
def test_shown_command_uses_existing_options(page, command):
    parsed = _parse(command)
    if parsed is None:
        return
    name, args = parsed
    assert name in COMMANDS, f"{page}: {command!r}: no command {name!r}"
    if name == "torchrun":  # torchrun's options, then a script with its own
        from torch.distributed.run import get_args_parser

        script = next((i for i, a in enumerate(args) if a.endswith(".py")), None)
        if script is None:  # the name alone, in a sentence
            return
        launcher = {o for a in get_args_parser()._actions for o in a.option_strings}
        assert {a.split("=", 1)[0] for a in args[:script] if a.startswith("-")} <= launcher
        stem = Path(args[script]).stem
        name, args = SCRIPT_ALIASES.get(stem, stem), args[script + 1:]
    known = _options(cli_reference.command_parser(name), args)
    used = {a.split("=", 1)[0] for a in args if a.startswith("-") and len(a) > 1
            and not re.fullmatch(r"-[\d.]+", a)}
    assert used <= known, f"{page}: {command!r}: no option {sorted(used - known)} in dfpir {name}"


def test_readme_links_and_images_point_at_files():
    """README.md is read on GitHub and PyPI, outside the MkDocs build that checks docs/ links:
    every relative link or image in it must name a file of the checkout (CI clones one)."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:|#", t)]
    assert local, "README.md should link into docs/"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that are not there: {missing}"


def test_cli_reference_is_current():
    """docs/cli.md lists every option of every command; with the Python that generated it, it is
    exactly what the parsers print (argparse's layout differs between Python versions)."""
    page = cli_reference.PAGE.read_text()
    for name in COMMANDS:
        parser = cli_reference.command_parser(name)
        assert f"## dfpir {name}\n" in page
        missing = [o for o in _options(parser, []) if o.startswith("--") and o not in page]
        assert not missing, f"docs/cli.md lacks {missing} of dfpir {name}: run python tools/cli_reference.py"
    if f"Python {sys.version_info[0]}.{sys.version_info[1]}." in page:
        assert page == cli_reference.render(), "docs/cli.md is stale: run python tools/cli_reference.py"


def test_config_reference_is_current():
    """docs/config.md lists every key of the config dataclasses, each with a line saying what
    it is for, exactly as tools/config_reference.py writes it."""
    import config_reference

    page = config_reference.PAGE.read_text()
    rows = config_reference.rows(config_reference.ExperimentConfig)
    assert len(rows) > 120 and all(comment for _, _, _, comment in rows), \
        [key for key, _, _, comment in rows if not comment]
    assert all(f"| `{key}` |" in page for key, *_ in rows)
    assert page == config_reference.render(), "docs/config.md is stale: run python " \
        "tools/config_reference.py"


def test_demo_table_is_copied_between_the_markers(tmp_path):
    import copy_demo_results as copier

    from dfpir.errors import DfpirError
    results = tmp_path / "final_results.md"
    results.write_text("| test set | gain |\n|---|---|\n| derain | +5.72 |\n")
    block = copier.demo_block([(results, "a 2-core test machine")])
    page = f"intro\n{copier.START}\nold table\n{copier.END}\noutro\n"
    new = copier.replace_block(page, block, tmp_path / "page.md")
    assert "| derain | +5.72 |" in new and "old table" not in new
    assert new.startswith("intro\n") and new.endswith("outro\n") and "a 2-core test machine" in new
    for target in copier.TARGETS:  # the pages it writes carry exactly one block
        copier.replace_block(target.read_text(), block, target)
    with pytest.raises(DfpirError, match="expected one"):
        copier.replace_block("no markers", block, tmp_path / "page.md")


def test_demo_copy_writes_the_table_and_the_figure_of_the_run(tmp_path, monkeypatch):
    import copy_demo_results as copier

    from dfpir.errors import DfpirError
    pages = [tmp_path / "README.md", tmp_path / "getting_started.md"]
    for page in pages:
        page.write_text(f"top\n{copier.START}\nold\n{copier.END}\n")
    figure = tmp_path / "figures" / "demo_comparison.png"
    figure.parent.mkdir()
    monkeypatch.setattr(copier, "ROOT", tmp_path)
    monkeypatch.setattr(copier, "TARGETS", tuple(pages))
    monkeypatch.setattr(copier, "FIGURE", figure)
    run = tmp_path / "run"
    run.mkdir()
    (run / "final_results.md").write_text("| test set | gain |\n|---|---|\n| derain | +5.72 |\n")
    args = copier.build_parser().parse_args(["--run", str(run), "--machine", "a test machine"])
    with pytest.raises(DfpirError, match="no comparison.png"):  # checked before anything is written
        copier.copy(args)
    assert all("old" in page.read_text() for page in pages) and not figure.exists()
    (run / "comparison.png").write_bytes(b"\x89PNG figure bytes")
    assert copier.copy(args) == 0
    assert all("| derain | +5.72 |" in page.read_text() for page in pages)
    assert figure.read_bytes() == b"\x89PNG figure bytes"
    other = tmp_path / "other_run"  # a second run of the same config, on another machine
    other.mkdir()
    (other / "final_results.md").write_text("| test set | gain |\n|---|---|\n| derain | +5.10 |\n")
    both = copier.build_parser().parse_args(["--run", str(run), "--machine", "machine A",
                                             "--run", str(other), "--machine", "machine B"])
    assert copier.copy(both) == 0
    text = pages[0].read_text()
    assert text.index("machine A") < text.index("+5.72") < text.index("machine B") < text.index("+5.10")
    one_machine = copier.build_parser().parse_args(["--run", str(run), "--run", str(other),
                                                    "--machine", "machine A"])
    with pytest.raises(DfpirError, match="one per --run"):
        copier.copy(one_machine)
