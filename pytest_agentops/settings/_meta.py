"""What a setting says about itself: a line of documentation and how it is written in a scenario file.

A settings class declares each field once, with ``setting(default, doc=..., kind=...)``. The scenario-file
reader and its JSON Schema are derived from these declarations (``pytest_agentops.scenario_file.keys``), so
a new setting is one field here, not an entry in three tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

#: How a value is written in YAML (each kind has one reader and one schema fragment in scenario_file.keys):
#: share, fraction, seconds, positive_seconds, whole, number, bool, text, enum, texts, tool_names, hosts,
#: tool_mix, mix, per_tool, section, model_section, reference, tools, task, name, expect, prices, state, faults,
#: llm, steps, reason, layers, confidence, notes, tool_name (one of the scenario's tools), arguments (a mapping
#: of argument names to values), same_args, rules (trajectory rules)
KINDS = frozenset({
    "share", "fraction", "seconds", "positive_seconds", "whole", "number", "bool", "text", "enum", "texts",
    "tool_names", "hosts", "tool_mix", "mix", "per_tool", "section", "model_section", "reference", "tools", "task",
    "name", "expect", "prices", "state", "faults", "llm", "steps", "reason", "layers", "confidence", "notes",
    "tool_name", "arguments", "same_args", "rules",
})


@dataclass(frozen=True, slots=True)
class Doc:
    """The metadata of one setting.

    ``kind`` says how the value is written (see ``KINDS``); ``minimum`` for whole numbers; ``nullable`` when
    null (None) is a valid value; ``options`` for enums and mixes (the valid kinds); ``section`` groups the
    key under a sub-section of the scenario file (``harness:``); ``yaml=False`` keeps a field out of files;
    ``of`` is the settings class of a ``section``/``model_section``; ``required`` for keys a file must give;
    ``schema``: JSON Schema keywords merged into the kind's fragment (a range the kind does not express);
    ``null_hint``: null is refused in a file, with this hint (a setting that is off when left out).
    """

    text: str
    kind: str
    minimum: int | float | None = None
    nullable: bool = False
    options: tuple[str, ...] = ()
    section: str = ""
    yaml: bool = True
    of: Any = None
    required: bool = False
    schema: Mapping[str, Any] | None = None
    null_hint: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown setting kind {self.kind!r}")


def setting(default: Any = dataclasses.MISSING, *, doc: str, kind: str,
            default_factory: Callable[[], Any] | Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field with its ``Doc`` (``meta``: the other ``Doc`` fields)."""
    info = Doc(doc, kind, **meta)
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata={"agentops": info})
    return field(default=default, metadata={"agentops": info})


def changed(value: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields of the settings dataclass ``value`` that differ from their defaults (name -> value), but
    ``skip``."""
    out = {}
    for spec in dataclasses.fields(value):
        if spec.name in skip:
            continue
        default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
        if getattr(value, spec.name) != default:
            out[spec.name] = getattr(value, spec.name)
    return out


def docs(cls: type) -> Mapping[str, Doc]:
    """The ``Doc`` of every documented field of a settings dataclass, in field order."""
    return {f.name: f.metadata["agentops"] for f in dataclasses.fields(cls) if "agentops" in f.metadata}
