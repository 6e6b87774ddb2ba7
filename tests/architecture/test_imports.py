"""The import graph of our own code: no cycle between modules, and the layers point one way.

Every ``import`` statement is counted, at module level or inside a function (a lazy import is
still a dependency).  Modules are named as installed: ``backends/`` is ``adamax_spec.backends``
and ``conformance/`` is ``adamax_spec.conformance`` (``pyproject.toml``).  The parent-package
import that Python performs for any submodule is not an edge (as in import-linter); an import
of a package's ``__init__`` by name is.

Layers, each allowed to import only those to its right::

    conformance -> backends -> core -> (nothing of ours)
    conformance -> reference -> (nothing of ours)

The core finds backends only through entry points (``adamax_spec.dispatch``,
``adamax_spec.state_file``), never by importing them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"adamax_spec": "adamax_spec", "backends": "adamax_spec.backends",
           "conformance": "adamax_spec.conformance"}
#: layer -> the layers it may import (besides itself)
ALLOWED = {
    "core": set(),
    "reference": set(),
    "backends": {"core"},
    "conformance": {"core", "reference", "backends"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str:
    for prefix, layer in (("adamax_spec.conformance", "conformance"), ("adamax_spec.backends", "backends"),
                          ("adamax_spec.reference", "reference")):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "core"


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports_of(module: str, path: Path) -> set[str]:
    """Our modules that ``module`` imports anywhere in its source."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:      # ``import a.b.c`` of a non-module attribute
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


GRAPH = {m: imports_of(m, p) for m, p in MODULES.items()}

#: what the core never imports, not even inside a function: it reaches them through entry points
ARRAY_LIBRARIES = {"numpy", "torch", "jax", "jaxlib", "cupy", "dask", "tensorflow", "keras", "tf_keras",
                   "numba", "ml_dtypes"}


def libraries_of(path: Path) -> set[str]:
    """The top-level names of the absolute imports in ``path`` (lazy ones included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name.partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.partition(".")[0])
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walk_sees_our_code():
    assert len(MODULES) > 30
    assert "adamax_spec.core" in GRAPH["adamax_spec.optimizer"]
    assert "adamax_spec.backends.numpy_backend" in GRAPH["adamax_spec.backends.numpy_apply"]
    assert "adamax_spec.core" in GRAPH["adamax_spec.validation"]


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_point_one_way(layer):
    wrong = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if _layer(m) == layer
                   for d in deps if _layer(d) != layer and _layer(d) not in ALLOWED[layer])
    assert wrong == [], f"{layer} may import only {sorted(ALLOWED[layer]) or 'nothing else of ours'}"


def test_core_names_no_array_library():
    wrong = sorted(f"{m} imports {lib}" for m, p in MODULES.items() if _layer(m) == "core"
                   for lib in libraries_of(p) & ARRAY_LIBRARIES)
    assert wrong == [], "the core reaches array libraries only through the adamax_spec.fast_paths entry points"
