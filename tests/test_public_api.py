"""The package face: every public name resolves, importing it (or the pytest entry point) loads nothing
heavy, the version comes from the package metadata, and results are deeply frozen values."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import subprocess
import sys

import pytest

import pytest_agentops
from pytest_agentops import Faults, Scenario, run_campaign

from conftest import ORDER_TOOLS, Orders, coin_agent

HEAVY = ("numpy", "freezegun", "sqlite3", "ssl", "asyncio", "yaml", "httpx", "respx", "pytest_agentops.engine",
         "pytest_agentops.harness", "pytest_agentops.settings", "pytest_agentops.scenario")


def test_every_public_name_resolves_and_is_listed():
    for name in pytest_agentops.__all__:
        assert getattr(pytest_agentops, name) is not None, name
    assert set(pytest_agentops.__all__) <= set(dir(pytest_agentops))
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        pytest_agentops.Nope  # noqa: B018


def test_faultplan_left_the_public_api_with_a_deprecation():
    with pytest.warns(DeprecationWarning, match="import it from pytest_agentops.plan"):
        from pytest_agentops import FaultPlan
    assert FaultPlan.__module__ == "pytest_agentops.plan"
    assert "FaultPlan" not in pytest_agentops.__all__


def test_the_version_is_the_installed_distributions():
    assert pytest_agentops.__version__ == importlib.metadata.version("pytest-agentops")


@pytest.mark.parametrize("module", ["pytest_agentops", "pytest_agentops.pytest_plugin"])
def test_importing_the_face_or_the_entry_point_loads_nothing_heavy(module):
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_results_scenarios_and_settings_are_deeply_frozen_and_hashable():
    scenario = Scenario(name="frozen", agent=coin_agent(0.9), task=["a", "b"], world=Orders, tools=list(ORDER_TOOLS),
                        check=lambda w, out: out == "done", prices={"m": (1, 2)}, trials=30, seed=4,
                        expect={"completion_rate": ">= 0.5"}, faults=Faults(per_tool={"lookup_order": 0.2}))
    assert isinstance(scenario.task, tuple) and isinstance(scenario.tools, tuple)
    assert hash(scenario) == hash(scenario.replace())
    result = run_campaign(scenario)
    assert hash(result) == hash(run_campaign(scenario))  # same seed: equal and equally hashed
    record = result.records[0]
    assert hash(record) and hash(record.trace[0])
    for mapping in (result.metrics, result.metrics["tokens_per_task"].quantiles, scenario.expect, record.layers,
                    scenario.faults.per_tool, result.outcome_counts):
        with pytest.raises(TypeError):
            mapping["x"] = 1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.seed = 1  # type: ignore[misc]
    assert "outcome_counts={'completed'" in repr(result)
