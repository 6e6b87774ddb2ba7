"""One home per target (``adamax_spec.conformance.targets``): the table, the names, the stamps,
third-party targets registered as entry points, and no import cycle among the suite's modules."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import adamax_spec.conformance
from adamax_spec.conformance import cli, targets
from adamax_spec.conformance.adapters.function import FunctionTarget
from adamax_spec.conformance.engine import run_property
from adamax_spec.conformance.properties import PROPERTIES
from adamax_spec.conformance.targets import (
    ENTRY_POINT_GROUP,
    STAMP_DISTS,
    LoadError,
    installed_targets,
    load_target,
    native_profile,
    stem,
    versions,
)
from adamax_spec.profiles import PROFILE_NAMES

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "adamax_spec.conformance"
HERE = Path(next(iter(adamax_spec.conformance.__path__)))


# ---------------------------------------------------------------------------------------------
# No module of the suite imports the CLI, and the suite's imports have no cycle


def _module_name(path: Path) -> str:
    parts = path.relative_to(HERE).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join((PACKAGE, *parts))


def _imports(path: Path) -> set[str]:
    """Every module of ``adamax_spec.conformance`` that ``path`` imports, at top level or in a function."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                if node.level else node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # ``from pkg import module``
    modules = {_module_name(p) for p in HERE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def test_no_module_of_the_suite_imports_the_cli() -> None:
    importers = sorted(_module_name(p) for p in HERE.rglob("*.py")
                       if p.name != "cli.py" and f"{PACKAGE}.cli" in _imports(p))
    assert importers == [], importers


def test_the_suites_imports_have_no_cycle() -> None:
    graph = {_module_name(p): _imports(p) for p in HERE.rglob("*.py")}
    assert graph[f"{PACKAGE}.cli"] >= {f"{PACKAGE}.options", f"{PACKAGE}.matrix"}  # the walk sees imports
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join((*path[path.index(node):], node)))
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, (*path, node))
        done.add(node)

    for module in sorted(graph):
        visit(module, ())


def test_suite_imports_are_relative_within_and_absolute_across_folders() -> None:
    """The convention of ``docs/architecture.md``: a module of the suite imports another of the
    suite relatively (mypy, which names files by folder, cannot resolve ``adamax_spec.conformance``
    and would treat it as ``Any``), and anything outside ``conformance/`` absolutely, so a reader
    never needs the install remapping."""
    wrong = []
    for path in sorted(HERE.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                target = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                if not target.startswith(PACKAGE):
                    wrong.append(f"{path.name}:{node.lineno}: relative import out of the suite ({target})")
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                wrong += [f"{path.name}:{node.lineno}: absolute import of the suite ({n})"
                          for n in names if n == PACKAGE or n.startswith(f"{PACKAGE}.")]
    assert wrong == [], wrong


# ---------------------------------------------------------------------------------------------
# The table: labels, native profiles, report file names, version stamps


def _expected_labels(keras_backend: str) -> list[str]:
    """The labels the matrix and the deep runs have always used, in their order."""
    have = lambda m: importlib.util.find_spec(m) is not None  # noqa: E731
    out = [f"adamax_spec[{b}]" for b in ("numpy", "torch", "jax", "array_api_strict", "dask", "cupy") if have(b)]
    out += [lab for lab, m in (("torch.optim.Adamax", "torch"), ("optax.adamax", "optax"),
                               ("tf_keras legacy Adamax", "tf_keras")) if have(m)]
    return out + ([f"keras 3 Adamax [{keras_backend}]"] if have("keras") else [])


@pytest.mark.parametrize("keras_backend", [None, "jax"])
def test_installed_targets_keep_their_labels(keras_backend: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "_entry_points", lambda: [])
    if keras_backend is None:
        monkeypatch.delenv("KERAS_BACKEND", raising=False)
    else:
        monkeypatch.setenv("KERAS_BACKEND", keras_backend)
    labels = [label for label, _ in installed_targets()]
    assert labels == _expected_labels(keras_backend or "tensorflow")
    assert [label for label, _ in installed_targets(keras_only=True)] == [lab for lab in labels if "keras 3" in lab]


def test_native_profiles() -> None:
    expected = {"adamax_spec[numpy]": "keras", "adamax_spec[jax]": "keras", "adamax_spec[mystery]": "keras",
                "torch.optim.Adamax": "torch", "optax.adamax": "optax", "tf_keras legacy Adamax": "keras",
                "keras 3 Adamax": "keras3", "keras 3 Adamax [tensorflow]": "keras3", "keras 3 Adamax [jax]": "keras3",
                "someone else's": "keras"}
    assert {label: native_profile(label) for label in expected} == expected
    assert {t.profile for t in targets.BUILTIN} <= set(PROFILE_NAMES)


def test_report_file_names_are_unchanged() -> None:
    # matrix cells: label-profile; deep-run summaries: the label alone
    assert stem("adamax_spec[numpy]", "keras") == "adamax_spec_numpy_-keras"
    assert stem("keras 3 Adamax [jax]", "keras3") == "keras_3_Adamax__jax_-keras3"
    assert stem("torch.optim.Adamax") == "torch.optim.Adamax"
    for path in (ROOT / "docs" / "deep-runs").glob("*.json"):
        if not path.name.endswith(".stale.json"):
            assert f"{stem(json.loads(path.read_text())['target'])}.json" == path.name


def test_deep_run_stamps_name_the_same_libraries() -> None:
    """A deep-run summary made before :func:`versions` moved still resumes: same keys, same order."""
    committed = json.loads((ROOT / "docs" / "deep-runs" / "adamax_spec_numpy_.json").read_text())["versions"]
    assert list(committed) == ["python", *STAMP_DISTS]
    now = versions(STAMP_DISTS)
    assert set(now) <= set(committed) and now["python"] and now["adamax_spec"]
    assert "platform" not in now and "platform" in versions(platform=True)


def test_cli_profiles_and_matrix_columns_are_the_profile_names(capsys: pytest.CaptureFixture[str]) -> None:
    from adamax_spec.conformance import matrix

    assert cli.main(["adamax_spec", "--profile", "adam"]) == 2
    err = capsys.readouterr().err
    assert all(repr(p) in err or f" {p}" in err for p in PROFILE_NAMES), err
    assert matrix.summary([matrix.Cell("x", "keras", {})])[0].split()[1:] == list(PROFILE_NAMES)


def test_load_target_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "_entry_points", lambda: [])
    with pytest.raises(LoadError) as e:
        load_target("not-a-spec")
    assert str(e.value) == "TARGET must look like module:attr or 'adamax_spec', got 'not-a-spec'"
    with pytest.raises(LoadError, match="cannot load 'numpy:no_such_attr': AttributeError"):
        load_target("numpy:no_such_attr")
    assert load_target("adamax_spec", "numpy", "torch").profile == "torch"


# ---------------------------------------------------------------------------------------------
# Third-party targets, registered under the entry-point group ``adamax_spec.targets``

PLUGIN = '''
import numpy as np
from adamax_spec.conformance.adapters.function import FunctionTarget


def step(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    """Keras 2.9 Adamax, written out plainly with every hyperparameter rounded to the weight dtype."""
    dt = w.dtype.type
    b1, b2, eps, lr = dt(beta_1), dt(beta_2), dt(epsilon), dt(lr)
    m = m + (g - m) * (dt(1) - b1)
    u = np.maximum(b2 * u, np.abs(g))
    return w - lr / (dt(1) - b1 ** dt(t)) * (m / (u + eps)), m, u


CALLS = []


def factory(profile, backend="numpy"):
    CALLS.append((profile, backend))
    return FunctionTarget(step, name=f"plugin step [{profile}]")


ready = FunctionTarget(step, name="ready-made")


def not_a_factory(profile):
    return 42
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Entry points of a fake installed distribution, pointing into a module written here."""
    name = f"adamax_plugin_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = importlib.metadata.EntryPoints(
        importlib.metadata.EntryPoint(ep, f"{name}:{attr}", ENTRY_POINT_GROUP)
        for ep, attr in (("their_adamax", "step"), ("their_factory", "factory"), ("their_ready", "ready"),
                         ("their_broken", "no_such_attr"), ("their_bad_factory", "not_a_factory"),
                         ("torch.optim.Adamax", "step")))  # a built-in label: ignored
    real = importlib.metadata.entry_points

    def entry_points(**params: Any) -> Any:
        return eps if params.get("group") == ENTRY_POINT_GROUP else real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return importlib.import_module(name)


def test_a_registered_step_function_is_loaded_and_conforms(plugin: Any) -> None:
    target = load_target("their_adamax")
    assert isinstance(target, FunctionTarget) and target.name == "their_adamax"
    prop = next(p for p in PROPERTIES if p.id == "U-1")
    result = run_property(prop, target, "keras", examples=5, seed=0)
    assert result.status == "pass", result.detail


def test_a_registered_factory_gets_the_profile_and_backend(plugin: Any) -> None:
    target = load_target("their_factory", "numpy", "torch")
    assert target.name == "plugin step [torch]" and plugin.CALLS == [("torch", "numpy")]
    assert load_target("their_ready") is plugin.ready
    with pytest.raises(LoadError, match="cannot load 'their_broken'"):
        load_target("their_broken")
    with pytest.raises(LoadError, match="returned int, not a target"):
        load_target("their_bad_factory")


def test_registered_targets_join_the_installed_ones(plugin: Any) -> None:
    made = dict(installed_targets())
    assert list(made)[-5:] == ["their_adamax", "their_factory", "their_ready", "their_broken", "their_bad_factory"]
    assert list(made).count("torch.optim.Adamax") <= 1  # the built-in keeps its label
    assert made["their_factory"]("optax").name == "plugin step [optax]"
    assert native_profile("their_adamax") == "keras"
    assert "their_adamax" not in dict(installed_targets(keras_only=True))
    with pytest.raises(LoadError, match=r"or a registered target \(their_adamax, "):
        load_target("thier_adamax")


def test_the_cli_runs_a_registered_target(plugin: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["their_adamax", "--only", "U-1", "--only", "SP-1", "--examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "their_adamax: CONFORMS" in out, out
