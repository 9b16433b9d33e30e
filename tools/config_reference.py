"""Write docs/config.md from the config dataclasses: every key a YAML config or ``--set`` may
give, its type, default and the one-line comment beside (or above) it in the source, so the
reference cannot drift from the code (``tests/test_docs.py`` fails when the page is stale).

    python tools/config_reference.py            # rewrite docs/config.md
    python tools/config_reference.py --check    # exit 1 if docs/config.md is stale
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import typing
from pathlib import Path

from cli_reference import write_or_check

from dfpir.config import ExperimentConfig
from dfpir.schema import _type_name

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def _comments(cls: type) -> dict[str, str]:
    """Each field's comment: the one on its line, else the comment lines right above it."""
    lines, start = inspect.getsourcelines(cls)
    tree = ast.parse(inspect.getsource(cls))
    found = {}
    for node in tree.body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        line = lines[node.lineno - 1]
        text = line.split("  # ", 1)[1].strip() if "  # " in line else ""
        if not text:
            above, index = [], node.lineno - 2
            while index >= 0 and lines[index].strip().startswith("#"):
                above.insert(0, lines[index].strip().lstrip("#").strip())
                index -= 1
            text = " ".join(above)
        found[node.target.id] = text.replace("|", "\\|")
    return found


def _default(field: dataclasses.Field) -> object:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _show(value: object) -> str:
    if dataclasses.is_dataclass(value):
        return "(section)"
    if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
        return f"{len(value)} entries (below)"
    text = json.dumps(value, default=str)
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}...`"


def rows(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, comment) of every field of ``cls``, sections and list entries
    expanded (a list of sections is shown as ``key[].field``)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    comments = _comments(cls)
    out = []
    for field in dataclasses.fields(cls):
        key, hint, default = f"{prefix}{field.name}", hints[field.name], _default(field)
        inner = typing.get_args(hint)[0] if typing.get_origin(hint) is list else None
        if dataclasses.is_dataclass(hint):
            out += rows(hint, f"{key}.")
        elif inner is not None and dataclasses.is_dataclass(inner):
            out.append((key, f"list of {inner.__name__}", _show(default), comments.get(field.name, "")))
            out += rows(inner, f"{key}[].")
        else:
            out.append((key, _type_name(hint), _show(default), comments.get(field.name, "")))
    return out


def render() -> str:
    parts = ["# Config reference\n",
             "Every key of an experiment config (YAML, or `--set key=value`), its type, default and",
             "what it is for, generated from the config dataclasses by `python",
             "tools/config_reference.py`; do not edit by hand. The paper's recipe is the defaults",
             "plus `configs/three_task.yaml` / `five_task.yaml`; [Training](training.md) explains",
             "the keys people change.\n",
             "| key | type | default | what |", "|---|---|---|---|"]
    for key, kind, default, comment in rows(ExperimentConfig):
        parts.append(f"| `{key}` | {kind.replace('|', '/')} | {default} | {comment} |")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(PAGE, render, "config_reference.py", argv)


if __name__ == "__main__":
    raise SystemExit(main())
