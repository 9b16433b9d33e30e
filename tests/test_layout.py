"""The package tree is the architecture: dependencies point one way (the layers below), no
module imports itself back in a circle, the top level holds packages and a few shared modules,
and no source file is too long to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dfpir"

#: Layer of every top-level package/module: each may import only from lower layers (and from
#: inside itself). Mirrors the tree: shared basics, the model and data, configs, the commands'
#: libraries, the command line.
LAYERS: dict[str, int] = {
    "errors": 0,
    "schema": 1, "outputs": 1, "paths": 1,
    "device": 2, "models": 2,
    "data": 3,
    "prompts": 4,
    "config": 5,
    "loading": 6,
    "restore": 7,
    "blind": 8,
    "eval": 9,
    "train": 10, "app": 10, "analysis": 10,
    "perf": 11,
    "cli": 12,
    "__main__": 13,
}
#: Top-level modules besides packages: the shared basics (errors, the strict converter, the
#: check of an output place, what is wrong with an input path, devices), the one loading path,
#: __main__, and
#: the finder of 0.1's import paths (dfpir._compat, to go in 0.3).
TOP_MODULES = {"__init__", "__main__", "_compat", "errors", "schema", "outputs", "paths",
               "device", "loading"}
MAX_LINES = 400


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _target(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module a ``from ... import`` in ``path`` reads from."""
    if not node.level:
        return node.module or ""
    module = _module(path)
    package = (module if path.name == "__init__.py" else module.rsplit(".", 1)[0]).split(".")
    return ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module
                                                                 else []))


def _imports(path: Path) -> set[str]:
    """Every dfpir module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dfpir")}
        elif isinstance(node, ast.ImportFrom):
            target = _target(node, path)
            if target.startswith("dfpir"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    return found


def _sources() -> dict[str, Path]:
    return {_module(p): p for p in PACKAGE.rglob("*.py")}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_dependencies_point_down_the_layers():
    sources = _sources()
    bad = []
    for module, path in sources.items():
        top = _top(module)
        if top not in LAYERS:
            continue
        for target in _imports(path):
            other = _top(target)
            if target not in sources and target.rsplit(".", 1)[0] not in sources:
                continue  # a name imported from a module, already counted as the module
            if other and other != top and other in LAYERS and LAYERS[other] >= LAYERS[top]:
                bad.append(f"{module} imports {target} ({other} is not below {top})")
    assert not bad, "\n".join(sorted(bad))


def test_every_top_level_entry_has_a_layer_and_the_top_level_is_small():
    entries = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= TOP_MODULES, modules - TOP_MODULES
    assert entries - {"__init__", "_compat"} <= set(LAYERS), entries - set(LAYERS)


def test_no_import_circles_between_modules():
    """Module-level imports (those that run at import time) form no cycle."""
    sources = _sources()
    graph: dict[str, set[str]] = {}
    for module, path in sources.items():
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        edges = set()
        for node in top_level:
            if isinstance(node, ast.ImportFrom):
                target = _target(node, path)
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            else:
                candidates = [a.name for a in node.names]
            edges |= {c for c in candidates if c in sources and c != module}
        graph[module] = edges
    # a package's __init__ re-exporting its own modules is not a cycle through them
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_source_file_is_too_long():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
