"""The import graph, read with ``ast`` (module-level and function-level imports
alike): the layering docs/architecture.md describes, held by a test.

* the pure core imports no I/O library (kafka, fastavro, sqlalchemy) and no
  click, not even through another module of the project;
* nothing outside the CLI package imports it;
* no import circle among the project's modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "projections", "consumers")
PURE = (
    "ledger.events",
    "ledger.rules",
    "ledger.chain",
    "ledger.parsing",
    "ledger.data.contracts",
    "ledger.data.drift",
    "ledger.data.units",
    "ledger.merkle",
    "ledger.notes",
    "ledger.data.feedback",
    "ledger.identity",
    "ledger.jsonio",
    "ledger.event_ids",
    "ledger.rule_snapshots",
    "ledger.growing",
)
IO_LIBRARIES = ("kafka", "fastavro", "sqlalchemy", "click")
CLI = "ledger.cli"
SERVICE = "ledger.service"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module name ``name`` imports, anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                # ``from pkg import module`` imports the module; ``from module import
                # name`` the module.
                submodule = f"{base}.{alias.name}"
                named.add(submodule if submodule in MODULES else base)
    return {n for n in named if n}


def _project_edges() -> dict[str, set[str]]:
    edges = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in _imports(name, path):
            if imported in MODULES and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


EDGES = _project_edges()


def _reachable(start: str) -> dict[str, list[str]]:
    """Every project module ``start`` imports, directly or not, with one path to it."""
    paths = {start: [start]}
    stack = [start]
    while stack:
        here = stack.pop()
        for there in sorted(EDGES[here]):
            if there not in paths:
                paths[there] = [*paths[here], there]
                stack.append(there)
    return paths


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(EDGES):
        if root in index:
            continue
        work = [(root, iter(sorted(EDGES[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(EDGES[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_is_read():
    # A reader that found nothing would pass every check below.
    assert "ledger.events" in MODULES and "projections.runner" in MODULES
    assert "ledger.events" in EDGES["ledger.rules"]


@pytest.mark.parametrize("module", PURE)
def test_the_pure_core_imports_no_io_library_nor_click(module):
    assert module in MODULES, f"{module} is gone: update PURE"
    offences = []
    for reached, path in sorted(_reachable(module).items()):
        libraries = {n.split(".")[0] for n in _imports(reached, MODULES[reached])} & set(IO_LIBRARIES)
        offences += [f"{' -> '.join(path)} imports {lib}" for lib in sorted(libraries)]
    assert not offences, "\n".join(offences)


def test_only_the_cli_imports_the_cli():
    offences = [
        f"{name} imports {target}"
        for name, targets in sorted(EDGES.items())
        if not (name == CLI or name.startswith(CLI + "."))
        for target in sorted(targets)
        if target == CLI or target.startswith(CLI + ".")
    ]
    assert not offences, "\n".join(offences)


def test_no_import_circles():
    cycles = _cycles()
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(("package", "other"), [("projections", "consumers"), ("consumers", "projections")])
def test_projections_and_consumers_do_not_import_each_other(package, other):
    # What both need lives below them (ledger.sql, ledger.follow).
    offences = [
        f"{name} imports {target}"
        for name, targets in sorted(EDGES.items())
        if name.split(".")[0] == package
        for target in sorted(targets)
        if target.split(".")[0] == other
    ]
    assert not offences, "\n".join(offences)


def test_the_core_imports_nothing_above_it():
    above = ("projections", "consumers", CLI)
    offences = [
        f"{name} imports {target}"
        for name, targets in sorted(EDGES.items())
        if name.split(".")[0] == "ledger" and not (name == CLI or name.startswith(CLI + "."))
        # the service, like the CLI, sits on top: it answers reads from the views
        and not (name == SERVICE or name.startswith(SERVICE + "."))
        for target in sorted(targets)
        if any(target == a or target.startswith(a + ".") for a in above)
    ]
    assert not offences, "\n".join(offences)


def test_command_modules_do_not_import_each_other():
    # What two command modules share lives in ledger.cli.base (or output); only the
    # root gathers them.
    shared = {CLI, f"{CLI}.base", f"{CLI}.output", f"{CLI}.root", f"{CLI}.__main__"}
    commands = {name for name in MODULES if name.startswith(CLI + ".") and name not in shared}
    assert {f"{CLI}.query", f"{CLI}.report"} <= commands
    offences = [
        f"{name} imports {target}"
        for name in sorted(commands)
        for target in sorted(EDGES[name] & commands)
    ]
    assert not offences, "\n".join(offences)
