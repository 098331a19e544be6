"""Import rules over the repository's packages, read from the source (nothing is imported):

- no import cycle, counting imports inside functions too (a lazy import still makes the modules depend
  on each other; it only hides the cycle);
- no module imports another module's private name (`from x import _name`);
- no import of Hydra's private modules (`hydra._internal`), which would make the hydra-core pin load-bearing.

An edge goes to the most specific module of this repository an import names: `from tasks.demos import
official` -> tasks.demos.official, `from tasks.demos import load_demos` -> tasks.demos. Importing a
submodule also runs its parent package's `__init__`, but that is not counted: a package that re-exports
its submodules' names is not a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("encoders", "tasks", "policies", "experiments")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _sources() -> dict[str, Path]:
    """Every module of the checked packages -> its file."""
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _imports(module: str, path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, imported module, names taken from it) for every import statement, at any depth."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base, [alias.name for alias in node.names]


def _target(imported: str, name: str | None = None) -> str | None:
    """The most specific module of the repository that `import imported` / `from imported import name` loads."""
    modules = _sources()
    if name and f"{imported}.{name}" in modules:
        return f"{imported}.{name}"
    parts = imported.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


@cache
def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in _sources()}
    for module, path in _sources().items():
        for _, imported, names in _imports(module, path):
            for name in names or [None]:
                target = _target(imported, name)
                if target is not None and target != module:
                    graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A concrete loop inside a strongly connected component, for the failure message."""
    members, start = set(component), component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(graph[path[-1]] & members)
        back = [n for n in nxt if n in seen]
        if back and (len(path) > 1 or back[0] != path[-1]):
            return [*path[path.index(back[0]) :], back[0]]
        step = next(n for n in nxt if n not in seen)
        path.append(step)
        seen.add(step)


def _in(package: str, module: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    graph = _graph()
    cycles = [c for c in _cycles(graph) if any(_in(package, m) for m in c)]
    loops = [" -> ".join(_one_cycle(graph, c)) for c in cycles]
    assert not cycles, f"import cycles involving {package}/ (imports inside functions count):\n" + "\n".join(loops)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_private_names_imported_across_modules(package):
    bad = []
    for module, path in _sources().items():
        if not _in(package, module):
            continue
        for line, imported, names in _imports(module, path):
            if _target(imported) is None:
                continue  # a third-party module: not ours to judge here (Hydra is checked below)
            private = [n for n in [*imported.split("."), *names] if n.startswith("_") and not n.startswith("__")]
            if private:
                bad.append(f"{path.relative_to(REPO)}:{line}: {imported} {', '.join(private)}")
    assert not bad, "private names imported from other modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_hydra_private_modules(package):
    bad = [
        f"{path.relative_to(REPO)}:{line}: {imported}"
        for module, path in _sources().items()
        if _in(package, module)
        for line, imported, names in _imports(module, path)
        if imported.startswith("hydra._internal") or (imported == "hydra" and "_internal" in names)
    ]
    assert not bad, "imports of Hydra's private modules (use its public API):\n" + "\n".join(bad)


def test_every_gymnasium_suite_adapter_provides_the_task_contract():
    """`TaskSpec` delegates by name to its adapter module; a missing function would only fail mid-run."""
    import tasks
    from tasks.habitat import HabitatTaskSpec
    from tasks.spec import ADAPTER_FUNCTIONS

    adapters = {
        t.adapter for t in tasks.available() if not isinstance(t, HabitatTaskSpec)
    }  # habitat-baselines runs those
    assert adapters == {"tasks.metaworld", "tasks.dmc", "tasks.adroit", "tasks.trifinger"}
    for spec in tasks.available():
        if not isinstance(spec, HabitatTaskSpec):
            module = spec.adapter_module()
            assert all(callable(getattr(module, f, None)) for f in ADAPTER_FUNCTIONS), spec.adapter


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    """The rules above are only as good as the walk: an import inside a function must be found."""
    path = tmp_path / "__init__.py"
    path.write_text("import os\n\n\ndef f():\n    from tasks.spec import TaskSpec\n    from .sub import _x\n")
    found = [(imported, names) for _, imported, names in _imports("tasks.pkg", path)]
    assert found == [("os", []), ("tasks.spec", ["TaskSpec"]), ("tasks.pkg.sub", ["_x"])]
    assert (
        _target("tasks.demos", "official") == "tasks.demos.official"
        and _target("tasks.demos", "load_demos") == "tasks.demos"
    )
    assert _target("numpy") is None


def test_the_checker_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _one_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert _cycles({"a": {"b"}, "b": set()}) == []
