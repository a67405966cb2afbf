"""The package's shape cannot silently rot: no import cycles, and arrows that point one way
(pytest plugin -> engine -> harness layers -> virtual time and process patches -> values and statistics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from import_graph import cycles, import_graph, layer_of, upward_imports

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_agentops"

#: The declared layer order, lowest first. A module may import its own layer or a lower one.
LAYERS: dict[str, int] = {
    # values and statistics: no pytest, no runtime
    "pytest_agentops._frozen": 0, "pytest_agentops._version": 0, "pytest_agentops.errors": 0,
    "pytest_agentops.stable_repr": 0, "pytest_agentops.secret_rules": 0, "pytest_agentops.entropy": 0,
    "pytest_agentops.lazy_numpy": 0, "pytest_agentops._lazy": 0,
    "pytest_agentops._validation": 1, "pytest_agentops.stats": 1, "pytest_agentops.seeding": 1,
    "pytest_agentops.metrics": 2, "pytest_agentops.records": 2, "pytest_agentops.record_store": 2,
    "pytest_agentops.trace_spill": 2,
    "pytest_agentops.settings": 3,
    "pytest_agentops.expect": 4, "pytest_agentops.plan": 4, "pytest_agentops.judge": 4,
    "pytest_agentops.scenario": 5, "pytest_agentops.result": 5, "pytest_agentops.precedence": 5,
    # virtual time, then everything a campaign changes in the interpreter
    "pytest_agentops.vtime": 6,
    "pytest_agentops.process": 7,
    # the harness layers and the model boundary
    "pytest_agentops.harness": 8, "pytest_agentops.llm": 8,
    # the engine, the scenario-file loader, the reports
    "pytest_agentops.engine": 9, "pytest_agentops.scenario_file": 9, "pytest_agentops.report": 9,
    # the front doors: the pytest plugin, the gate CLI, the bundled demo
    "pytest_agentops.pytest_plugin": 10, "pytest_agentops.gate": 10, "pytest_agentops.demo": 10,
    "pytest_agentops.cli": 10,
    "pytest_agentops": 11, "pytest_agentops.__main__": 11,
}


@pytest.fixture(scope="module")
def package_graph() -> dict[str, set[str]]:
    """The package's import graph, read once for the module (every module's AST: the costly part)."""
    return import_graph(PACKAGE)


@pytest.fixture
def graph(package_graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A copy of it for each test (no test can change what the next one checks)."""
    return {module: set(imports) for module, imports in package_graph.items()}


def test_the_package_has_no_import_cycle(graph):
    assert len(graph) > 60  # the whole package was read
    assert cycles(graph) == []


def test_imports_point_down_the_declared_layers(graph):
    for module in graph:
        layer_of(module, LAYERS)  # every module belongs to a layer
    assert upward_imports(graph, LAYERS) == []


def test_values_and_statistics_know_nothing_of_pytest_or_the_runtime(graph):
    values = [m for m in graph if layer_of(m, LAYERS) <= LAYERS["pytest_agentops.result"]]
    for module in values:
        source = (PACKAGE.parent / (module.replace(".", "/") + ".py"))
        text = source.read_text() if source.exists() else (PACKAGE.parent / module.replace(".", "/") /
                                                           "__init__.py").read_text()
        assert "import pytest" not in text, module


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checker_catches_a_cycle_hidden_in_a_function_and_ignores_type_checking_imports(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from . import b\n",
        "b.py": "def later():\n    from .c import thing\n",
        "c.py": "from typing import TYPE_CHECKING\nfrom .sub import d\nif TYPE_CHECKING:\n    from .b import x\n",
        "sub/__init__.py": "",
        "sub/d.py": "from ..a import y\n",
    })
    graph = import_graph(root)
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.sub.d"}  # TYPE_CHECKING import not counted
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.sub.d"]]


def test_the_checker_catches_an_import_against_the_layer_order(tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "low.py": "import pkg.high\n", "high.py": "from . import low\n"})
    graph = import_graph(root)
    assert upward_imports(graph, {"pkg": 2, "pkg.low": 0, "pkg.high": 1}) == [
        "pkg.low (layer 0) imports pkg.high (layer 1)"]
    with pytest.raises(KeyError, match=r"pkg\.other is in no layer"):
        layer_of("pkg.other", {"pkg.low": 0})


def test_a_process_patch_registered_again_replaces_the_one_not_held_and_refuses_a_held_one():
    """A module imported again (pytester's in-process runs restore ``sys.modules``, so a later run imports the
    module anew) registers its patch again: that broke collection with 'already registered' depending on which
    test of an xdist worker first imported the module."""
    from pytest_agentops.process.patch import INVENTORY, ProcessPatch

    try:
        first = ProcessPatch("test-reimported", lambda: None, lambda made: None)
        second = ProcessPatch("test-reimported", lambda: None, lambda made: None)
        assert INVENTORY["test-reimported"] is second and first is not second
        held = "process patch 'test-reimported' is already registered, and held"
        with second(), pytest.raises(ValueError, match=held):
            ProcessPatch("test-reimported", lambda: None, lambda made: None)
    finally:
        INVENTORY.pop("test-reimported", None)
