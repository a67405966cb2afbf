"""The JSON Schema of scenario files, generated from the same key tables the loader reads with, and the text of
the shipped ``scenario.schema.json`` (regenerate it with ``python -m pytest_agentops.scenario_file``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import hide_own_frames
from .keys import harness_keys, scenario_keys, section_schema

__tracebackhide__ = hide_own_frames

#: The JSON Schema shipped with the package.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "scenario.schema.json"


def build_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of scenario files, generated from the key tables.

    It checks everything that does not need imports: keys, types, ranges, fault kinds, profiles,
    threshold expressions. Not covered: whether references import and are callable, tool names in
    ``per_tool``/``outage_tools``, duplicate names and duplicate YAML keys, and the range of a threshold
    written with an exponent (``'>= 9e-1'``), which the loader checks.
    """
    scenario = section_schema(scenario_keys())
    # a setting given at the top level and under the older 'harness:' spelling is one too many
    scenario["allOf"] = [{"not": {"required": [key, "harness"], "properties": {"harness": {"required": [key]}}}}
                         for key in harness_keys()]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pytest-agentops scenario file",
        "description": "One scenario, or a list of scenarios, for `pytest --agent-chaos`.",
        "$defs": {"scenario": scenario},
        # if/then/else rather than anyOf, so that editors report the error inside the scenario
        "if": {"type": "array"},
        "then": {"minItems": 1, "items": {"$ref": "#/$defs/scenario"}},
        "else": {"$ref": "#/$defs/scenario"},
    }


def schema_text() -> str:
    """The schema as the text of ``scenario.schema.json``."""
    return json.dumps(build_schema(), indent=2) + "\n"


