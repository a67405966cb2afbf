"""Scenario files: YAML documents that describe ``Scenario``s, loaded safely, with file:line:column errors.

A file holds one scenario mapping or a list of them. Keys mirror ``Scenario``; Python objects are named
``package.module:attr``. The YAML is composed into a node tree (``yamldoc``, never ``yaml.load``): every key
and value keeps its position, so each mistake is reported where it was written. Values are checked by the
same validators as Python scenarios, one key at a time, so the error lands on the offending node.

The keys are derived from the settings classes' field declarations (``keys``); the shipped
``scenario.schema.json`` is generated from the same tables (``schema``; regenerate it with
``python -m pytest_agentops.scenario_file``).
"""

from ..errors import hide_own_frames
from .keys import Key, harness_keys, scenario_keys, table_of
from .load import (
    ScenarioEntry,
    load_scenario_entries,
    load_scenario_text,
    load_scenarios,
    not_a_scenario_file,
    read_scenario_file,
)
from .refs import REFERENCE_PATTERN, resolve_reference
from .schema import SCHEMA_PATH, build_schema, schema_text

__tracebackhide__ = hide_own_frames

__all__ = [
    "REFERENCE_PATTERN",
    "SCHEMA_PATH",
    "Key",
    "ScenarioEntry",
    "build_schema",
    "harness_keys",
    "load_scenario_entries",
    "load_scenario_text",
    "load_scenarios",
    "not_a_scenario_file",
    "read_scenario_file",
    "resolve_reference",
    "scenario_keys",
    "schema_text",
    "table_of",
]


def __getattr__(name: str) -> object:
    """The key tables under the names they had before they were derived from the settings classes."""
    from ..settings.faults import Faults
    from ..settings.layers import Approver

    tables = {"SCENARIO_KEYS": scenario_keys, "HARNESS_KEYS": harness_keys,
              "FAULTS_KEYS": lambda: table_of(Faults), "APPROVER_KEYS": lambda: table_of(Approver)}
    if name in tables:
        return tables[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
