"""The keys of a scenario file, derived from the settings' own field declarations (``settings._meta.Doc``).

Each settings class (``Scenario``, ``Faults``, ``ToolFaults``, ``Approver``, ``Budget``, ``DailyUsers``,
``Escalation``, ``ModelFaults``, ``Drift``, ``HttpFaults``) declares every field once, with a line of
documentation and its *kind*; ``table_of(cls)`` turns the declarations into a table of ``Key``s: how the
node is read (``READERS``), where the value goes, and its JSON Schema fragment (``schema_of``). A new
setting is a new field of its settings class, nothing here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from .._validation import did_you_mean
from ..errors import hide_own_frames
from ..expect import PASS_K_PATTERN, mean_patterns, rate_expression_pattern, threshold_patterns
from ..metrics import builtin_metrics
from ..scenario import Scenario
from ..settings._meta import Doc, docs
from ..settings.faults import FAILING_TOOL_FAULTS, PROFILES, Faults, ToolFaults
from ..settings.model import FakeLLM
from ..settings.trajectory import RULE_COUNT_PREFIX, RULE_NAME_PATTERN, RULE_RATE_PREFIX, Rule
from . import readers as r
from .readers import NAME_PATTERN, Reader
from .refs import REFERENCE_PATTERN
from .yamldoc import Node, YamlDoc, found

__tracebackhide__ = hide_own_frames


@dataclass(frozen=True)
class Key:
    """One key of a scenario-file section: how its node is read, where the value goes, its JSON Schema.

    ``target`` is the keyword argument the value becomes: a field name (default: the key's name), or
    ``""`` to merge a dict of keyword arguments (a sub-section such as ``harness``).
    """

    name: str
    read: Reader
    schema: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
    description: str
    target: str | None = None
    required: bool = False

    def json_schema(self) -> dict[str, Any]:
        schema = dict(self.schema() if callable(self.schema) else self.schema)
        schema.setdefault("description", self.description)
        return schema


# --- reading a section ---------------------------------------------------------------------------------------


def _place(kwargs: dict[str, Any], key: Key, value: Any) -> None:
    target = key.name if key.target is None else key.target
    if target == "":
        for name, v in value.items():
            if isinstance(v, dict) and isinstance(kwargs.get(name), dict):
                kwargs[name].update(v)
            else:
                kwargs[name] = v
    else:
        kwargs[target] = value


def _unknown_key(table: Mapping[str, Key], key: str, top_level: bool) -> str:
    homes = [section for section, keys in sections().items() if key in keys and section != "harness"] \
        if top_level else []
    hint = f" ({key!r} belongs under '{homes[0]}:')" if homes else did_you_mean(key, table)
    return f"unknown key {key!r}{hint}; valid keys: {', '.join(table)}"


def read_section(doc: YamlDoc, node: yaml.MappingNode, table: Mapping[str, Key],
                 probe: Callable[[dict[str, Any]], Any], top_level: bool = False, where: str = "") -> dict[str, Any]:
    """Keyword arguments from a mapping whose keys come from ``table``; each value validated by ``probe``
    alone, so a ConfigError points at the value that caused it."""
    entries = doc.items(node)
    for key, (key_node, _) in entries.items():
        if key not in table:
            doc.fail(key_node, where + _unknown_key(table, key, top_level))
    if top_level and "harness" in entries:
        both = [key for key in harness_keys() if key in entries]
        if both:
            doc.fail(entries[both[0]][0], f"{both[0]!r} is given at the top level and under 'harness:'; give it "
                                          "once (at the top level: 'harness:' is the older spelling)")
        line = entries["harness"][0].start_mark.line + 1  # (shown at the YAML file's line, not the plugin's)
        warnings.warn_explicit(f"{doc.path}:{line}: 'harness:' is deprecated: give {' and '.join(harness_keys())} "
                               "at the top level of the scenario, as in Python", DeprecationWarning, str(doc.path),
                               line)
    for name, key in table.items():
        if key.required and name not in entries:
            doc.fail(node, f"{where}missing required key {name!r} ({key.description})")
    kwargs: dict[str, Any] = {}
    for name, key in table.items():
        if name not in entries:
            continue
        value_node = entries[name][1]
        value = key.read(doc, value_node, name)
        part: dict[str, Any] = {}
        _place(part, key, value)
        doc.check(value_node, lambda part=part: probe(part), value)
        _place(kwargs, key, value)
    return kwargs


def _build(cls: Any) -> Callable[[dict[str, Any]], Any]:
    """How a section's keyword arguments become the settings object (``profile`` picks a named profile). A
    class's ``YAML_PROBE`` fills in its required keys when one value is checked alone (the section's own
    required keys are checked before it is built)."""
    def build(kwargs: dict[str, Any]) -> Any:
        kwargs = {**getattr(cls, "YAML_PROBE", {}), **kwargs}
        if "profile" in kwargs:
            rest = {k: v for k, v in kwargs.items() if k != "profile"}
            return cls.profile(kwargs["profile"], **rest)
        return cls(**kwargs)
    return build


def section_reader(cls: Any) -> Reader:
    """A mapping of ``cls``'s settings (``approver:``, ``budget:``, ``users:``, ``escalation:``)."""
    def read(doc: YamlDoc, node: Node, label: str) -> Any:
        table = table_of(cls)
        if not isinstance(node, yaml.MappingNode):
            doc.fail(node, f"{label}={found(doc, node)} must be a mapping of {', '.join(table)}")
        build = _build(cls)
        with doc.within(f"{label}: "):
            kwargs = read_section(doc, node, table, build)
            return doc.check(node, lambda: build(kwargs))
    return read


def model_section_reader(cls: Any) -> Reader:
    """A ``faults:`` key of the model boundary: a profile name (model, drift) or a mapping of its settings."""
    def read(doc: YamlDoc, node: Node, label: str) -> Any:
        if hasattr(cls, "profile") and isinstance(node, yaml.ScalarNode):
            value = doc.plain(node)
            return doc.check(node, lambda: cls.coerce(value, label), value)
        return section_reader(cls)(doc, node, label)
    return read


def _refuse_null(reader: Reader, hint: str) -> Reader:
    def read(doc: YamlDoc, node: Node, label: str) -> Any:
        if isinstance(node, yaml.ScalarNode) and doc.scalar(node) is None:
            doc.fail(node, f"{label}=null: {hint}")
        return reader(doc, node, label)
    return read


def read_per_tool(doc: YamlDoc, node: Node, label: str) -> dict[str, Any]:
    """``per_tool:``: tool name -> a rate, or ``{rate, mix}``."""
    entries = r.mapping_node(doc, node, label, "tool name to a rate or {rate, mix}")
    out: dict[str, Any] = {}
    for tool, (knode, vnode) in entries.items():
        r.known_tool(doc, knode, tool, f"{label}[{tool!r}]")
        if isinstance(vnode, yaml.MappingNode):
            out[tool] = read_section(doc, vnode, table_of(ToolFaults),
                                     lambda kw, tool=tool: Faults(per_tool={tool: kw}), where=f"{label}[{tool!r}]: ")
        else:
            rate = doc.plain(vnode)
            doc.check(vnode, lambda tool=tool, rate=rate: Faults(per_tool={tool: rate}), rate)
            out[tool] = rate
    return out


def read_faults(doc: YamlDoc, node: Node, label: str) -> Faults | None:
    """``faults:``: null (the run's profile), a profile name, or a mapping (profile plus overrides)."""
    if isinstance(node, yaml.ScalarNode):
        value = doc.scalar(node)
        if value is None:
            return None
        if isinstance(value, str):
            return doc.check(node, lambda: Faults.profile(r.profile(doc, node, label)))
    table = table_of(Faults)
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={found(doc, node)} must be a profile name ({', '.join(PROFILES)}) or a mapping "
                       f"of {', '.join(table)}")
    build = _build(Faults)
    with doc.within(f"{label}: "):
        kwargs = read_section(doc, node, table, build)
        faults: Faults = doc.check(node, lambda: build(kwargs))
    if faults.injection is not None:  # (its arguments, at their line: the tools are known by now)
        at = doc.items(node)["injection"][1]
        if isinstance(at, yaml.MappingNode) and "arguments" in doc.items(at):
            at = doc.items(at)["arguments"][1]
        with doc.within(f"{label}: "):
            doc.check(at, lambda: faults.injection.check_arguments(doc.tool_specs))  # type: ignore[union-attr]
    return faults


def read_llm(doc: YamlDoc, node: Node, label: str) -> Any:
    """``llm:``: a reference to a policy, or ``{policy: ref, model: name, latency_s: seconds}``."""
    what = "a policy: policy(messages, tools) -> assistant message"
    if not isinstance(node, yaml.MappingNode):
        return FakeLLM(r.callable_ref(doc, node, label, what))
    table = table_of(FakeLLM)
    entries = r.mapping_node(doc, node, label, ", ".join(table))
    for key, (key_node, _) in entries.items():
        if key not in table:
            doc.fail(key_node, f"{label}: unknown key {key!r}{did_you_mean(key, table)}; "
                               f"valid keys: {', '.join(table)}")
    if "policy" not in entries:
        doc.fail(node, f"{label}: missing key 'policy' ({what}, e.g. pytest_agentops.demo:policy)")
    kwargs: dict[str, Any] = {"policy": r.callable_ref(doc, entries["policy"][1], f"{label}.policy", what)}
    for key in table:
        if key in entries and key != "policy":
            value = doc.plain(entries[key][1])
            doc.check(entries[key][1], lambda key=key, value=value: FakeLLM(kwargs["policy"], **{key: value}), value)
            kwargs[key] = value
    return doc.check(node, lambda: FakeLLM(**kwargs))


def read_arguments(doc: YamlDoc, node: Node, label: str) -> Any:
    """A mapping of argument names to values (``injection.arguments``)."""
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={found(doc, node)} must be a mapping of argument names to values")
    return doc.plain(node)


def _probe_rule(part: dict[str, Any]) -> Rule:
    """A Rule with only this key (and stand-ins that make it say one thing): validates the key alone."""
    kwargs = {"tool": "probe", **part}
    if "same" in part:
        kwargs.setdefault("after", "probe")
    if "after" not in kwargs and "at_most" not in kwargs and kwargs.get("confirmed") is not True:
        kwargs.update({"at_most": 0} if "confirmed" in kwargs else {"confirmed": True})
    return Rule(**kwargs)


def read_rules(doc: YamlDoc, node: Node, label: str) -> list[Rule]:
    """``rules:``: a list of trajectory rules, each a mapping of ``Rule``'s keys; their tools and the arguments
    ``same`` names are checked against the scenario's tools where they are written."""
    if not isinstance(node, yaml.SequenceNode):
        doc.fail(node, f"{label}={found(doc, node)} must be a list of rules, each a mapping with tool: and one of "
                       "after:, confirmed:, at_most:")
    table = table_of(Rule)
    rules: list[Rule] = []
    for i, item in enumerate(node.value):
        where = f"{label}[{i}]: "
        if not isinstance(item, yaml.MappingNode):
            doc.fail(item, f"{where}a rule must be a mapping of {', '.join(table)}, got {found(doc, item)}")
        with doc.within(where):
            kwargs = read_section(doc, item, table, _probe_rule)
            rule = doc.check(item, lambda kwargs=kwargs: Rule(**kwargs))
            at = doc.items(item).get("same", (None, item))[1]
            doc.check(at, lambda rule=rule: rule.check_tools(doc.tool_specs, where=""))
        rules.append(rule)
    doc.rule_names = tuple(r.name for r in rules)
    return rules


def read_harness(doc: YamlDoc, node: Node, label: str) -> dict[str, Any]:
    """``harness:``: the Scenario settings grouped under it (``enforce``, ``scopes``)."""
    table = harness_keys()
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={found(doc, node)} must be a mapping of {', '.join(table)}")
    with doc.within(f"{label}: "):
        return read_section(doc, node, table, r.probe_scenario)


#: How each kind of setting is read from its YAML node.
READERS: dict[str, Callable[[Doc], Reader]] = {
    "share": lambda d: r.plain, "fraction": lambda d: r.plain, "seconds": lambda d: r.plain,
    "positive_seconds": lambda d: r.plain, "whole": lambda d: r.whole, "number": lambda d: r.plain,
    "confidence": lambda d: r.plain, "bool": lambda d: r.boolean, "text": lambda d: r.plain,
    "enum": lambda d: r.plain, "texts": lambda d: r.string_list, "notes": lambda d: r.plain,
    "tool_names": lambda d: r.outage_tools, "hosts": lambda d: r.plain, "tool_mix": lambda d: r.tool_mix,
    "mix": lambda d: r.plain, "per_tool": lambda d: read_per_tool, "section": lambda d: section_reader(d.of),
    "model_section": lambda d: model_section_reader(d.of), "reference": lambda d: r.callable_ref,
    "tools": lambda d: r.tools, "task": lambda d: r.task, "name": lambda d: r.name, "expect": lambda d: r.expect,
    "prices": lambda d: r.prices, "state": lambda d: r.plain, "faults": lambda d: read_faults,
    "llm": lambda d: read_llm, "steps": lambda d: r.plain, "reason": lambda d: r.reason,
    "tool_name": lambda d: r.tool_name, "arguments": lambda d: read_arguments, "same_args": lambda d: r.plain,
    "rules": lambda d: read_rules,
}


def reader_of(doc: Doc) -> Reader:
    """The reader of one declared setting: its kind's, with null refused (``null_hint``) or allowed."""
    reader = READERS[doc.kind](doc)
    if doc.null_hint:
        return _refuse_null(reader, doc.null_hint)
    if doc.nullable and doc.kind != "faults":
        return r.optional(reader)
    return reader


# --- JSON Schema fragments -------------------------------------------------------------------------------------

NULL = {"type": "null"}
_REF = {"type": "string", "pattern": REFERENCE_PATTERN}
_RATE = {"type": "number", "minimum": 0, "maximum": 1}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_NOTES = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}


def section_schema(table: Mapping[str, Key]) -> dict[str, Any]:
    """A mapping of exactly these keys."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": {name: key.json_schema() for name, key in table.items()}}
    required = [name for name, key in table.items() if key.required]
    if required:
        schema["required"] = required
    return schema


def _tool_mix_schema() -> dict[str, Any]:
    return {"type": "object", "minProperties": 1, "propertyNames": {"enum": list(FAILING_TOOL_FAULTS)},
            "additionalProperties": {"type": "number", "minimum": 0},
            # at least one positive weight
            "anyOf": [{"required": [k], "properties": {k: {"exclusiveMinimum": 0}}} for k in FAILING_TOOL_FAULTS]}


def _expect_schema() -> dict[str, Any]:
    """Threshold expressions per metric kind, from the parser's grammar (the package's own metrics from the
    registry: metrics a user registers are not in the shipped schema)."""
    patterns: dict[str, Any] = {}
    for name, defn in sorted(builtin_metrics().items()):
        key, expr = threshold_patterns(name, defn.kind, defn.minimum)
        what = f"{defn.kind} (counts: {defn.counting_unit})"
        patterns[key] = {"type": "string", "pattern": expr, "description": f"{what}: {defn.description}"}
        if defn.kind == "distribution":
            key, expr = mean_patterns(name)
            patterns[key] = {"type": "string", "pattern": expr,
                             "description": f"the mean of {name} under a declared cap: {defn.description}"}
    rule = RULE_NAME_PATTERN.removeprefix("^").removesuffix("$")
    for prefix, kind in ((RULE_COUNT_PREFIX, "count"), (RULE_RATE_PREFIX, "rate")):
        key, expr = threshold_patterns(prefix + "RULE", kind)
        patterns[key.replace("RULE", rule)] = {
            "type": "string", "pattern": expr,
            "description": f"{kind} of one trajectory rule of the scenario (trajectory: rules:, by name)"}
    patterns[PASS_K_PATTERN] = {"type": "string", "pattern": rate_expression_pattern(),
                                "description": "pass^k: the share of tasks whose k trials all complete"}
    return {"type": "object", "additionalProperties": False, "patternProperties": patterns}


def _rule_schema() -> dict[str, Any]:
    """A trajectory rule: its keys, and exactly one thing said (after, confirmed: true, or at_most)."""
    schema = section_schema(table_of(Rule))
    schema["oneOf"] = [{"required": ["after"], "properties": {"after": {"type": "string"}}},
                       {"required": ["confirmed"], "properties": {"confirmed": {"const": True}}},
                       {"required": ["at_most"], "properties": {"at_most": {"type": "integer"}}}]
    return schema


def _prices_schema() -> dict[str, Any]:
    price = {"type": "number", "minimum": 0}
    return {"type": "object", "additionalProperties": {"anyOf": [
        {"type": "array", "minItems": 2, "maxItems": 2, "items": price},
        {"type": "object", "additionalProperties": False, "required": ["input", "output"],
         "properties": {"input": price, "output": price}}]}}


def _model_section_schema(cls: Any) -> dict[str, Any]:
    section = section_schema(table_of(cls))
    return {"anyOf": [{"enum": list(PROFILES)}, section]} if hasattr(cls, "profile") else section


def _faults_schema() -> dict[str, Any]:
    return {"if": {"type": "object"}, "then": section_schema(table_of(Faults)),
            "else": {"anyOf": [{"enum": list(PROFILES)}, NULL]}}


#: The JSON Schema fragment of each kind of setting.
SCHEMAS: dict[str, Callable[[Doc], dict[str, Any]]] = {
    "share": lambda d: dict(_RATE),
    "fraction": lambda d: {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "seconds": lambda d: {"type": "number", "minimum": 0},
    "positive_seconds": lambda d: {"type": "number", "exclusiveMinimum": 0},
    "whole": lambda d: {"type": "integer", "minimum": d.minimum or 0},
    "number": lambda d: {"type": "number", **({} if d.minimum is None else {"minimum": d.minimum})},
    "confidence": lambda d: {"type": "number", "minimum": 0.5, "exclusiveMaximum": 1},
    "bool": lambda d: {"type": "boolean"},
    "text": lambda d: {"type": "string", "minLength": 1},
    "enum": lambda d: {"enum": list(d.options)},
    "texts": lambda d: dict(_STRINGS),
    "notes": lambda d: dict(_NOTES),
    "tool_names": lambda d: dict(_STRINGS),
    "hosts": lambda d: {"anyOf": [{"type": "string"}, _STRINGS]},
    "tool_mix": lambda d: _tool_mix_schema(),
    "mix": lambda d: {"type": "object", "minProperties": 1, "propertyNames": {"enum": list(d.options)},
                      "additionalProperties": {"type": "number", "minimum": 0}},
    "per_tool": lambda d: {"type": "object", "additionalProperties": {
        "anyOf": [_RATE, section_schema(table_of(ToolFaults))]}},
    "section": lambda d: section_schema(table_of(d.of)),
    "model_section": lambda d: _model_section_schema(d.of),
    "reference": lambda d: dict(_REF),
    "tools": lambda d: {"anyOf": [_REF, {"type": "array", "items": _REF}]},
    "task": lambda d: {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}},
                                 {"type": "object", "additionalProperties": False, "required": ["generate"],
                                  "properties": {"generate": dict(_REF)}}]},
    "name": lambda d: {"type": "string", "pattern": NAME_PATTERN},
    "expect": lambda d: _expect_schema(),
    "prices": lambda d: _prices_schema(),
    "state": lambda d: {"type": "string", "pattern": r"^(memory|sqlite(:.+)?|(redis|rediss|unix)://.+)$"},
    "faults": lambda d: _faults_schema(),
    "llm": lambda d: {"anyOf": [_REF, section_schema(table_of(FakeLLM))]},
    "steps": lambda d: {"anyOf": [{"type": "integer", "minimum": 1}, {
        "type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 1}}]},
    "reason": lambda d: {"type": "string", "pattern": r"\S"},
    "tool_name": lambda d: {"type": "string", "minLength": 1},
    "arguments": lambda d: {"type": "object"},
    "same_args": lambda d: {"anyOf": [{"type": "array", "items": {"type": "string", "minLength": 1}},
                                      {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}}]},
    "rules": lambda d: {"type": "array", "items": _rule_schema()},
}


def schema_of(doc: Doc) -> Callable[[], dict[str, Any]]:
    """The JSON Schema of one declared setting (built when asked: the expect schema reads the registry)."""
    def schema() -> dict[str, Any]:
        fragment = SCHEMAS[doc.kind](doc)
        if doc.schema:
            for bound in ("minimum", "maximum"):  # an exclusive bound replaces the kind's inclusive one
                if "exclusiveM" + bound[1:] in doc.schema:
                    fragment.pop(bound, None)
            fragment.update(doc.schema)
        if doc.nullable and doc.kind != "faults":
            return {"anyOf": [*fragment["anyOf"], NULL]} if list(fragment) == ["anyOf"] else {"anyOf": [fragment, NULL]}
        return fragment
    return schema


# --- the tables --------------------------------------------------------------------------------------------------


def _key(name: str, doc: Doc) -> Key:
    return Key(name, reader_of(doc), schema_of(doc), doc.text, required=doc.required)


def _profile_key(cls: Any) -> Key:
    what = "fault profile" if cls is Faults else "profile"
    return Key("profile", r.profile, {"enum": list(PROFILES)},
               f"named {what}: none, low, mid, high; other keys override it")


@cache
def table_of(cls: Any) -> dict[str, Key]:
    """The keys of a settings class's section, in field order (a profile-capable class also takes
    ``profile``: first for ``faults:``, last for the model boundary's sections)."""
    table = {name: _key(name, doc) for name, doc in docs(cls).items() if doc.yaml and not doc.section}
    if cls is Faults:
        table = {"profile": Key("profile", r.profile, {"enum": list(PROFILES)},
                                "named profile: none, low (3% of tool calls fail), mid (8%), high (15%); other keys "
                                "override it"), **table}
    elif hasattr(cls, "profile"):
        table["profile"] = _profile_key(cls)
    return table


@cache
def harness_keys() -> dict[str, Key]:
    """The ``harness:`` keys: the Scenario settings declared in that section."""
    return {name: _key(name, doc) for name, doc in docs(Scenario).items() if doc.yaml and doc.section == "harness"}


@cache
def scenario_keys() -> dict[str, Key]:
    """The top-level keys of a scenario, in the order they are read (tools before faults). Keys mirror the
    ``Scenario`` fields; ``harness:`` (``enforce``, ``scopes`` under it) is the older spelling, still read."""
    table: dict[str, Key] = {}
    for name, doc in docs(Scenario).items():
        if not doc.yaml:
            continue
        if doc.section == "harness" and "harness" not in table:
            table["harness"] = Key("harness", read_harness, lambda: section_schema(harness_keys()),
                                   "deprecated: give enforce and scopes at the top level, as in Python",
                                   target="")
        table[name] = _key(name, doc)
    return table


@cache
def sections() -> dict[str, dict[str, Key]]:
    """The sub-sections of a scenario and their keys (to say where a misplaced key belongs)."""
    out: dict[str, dict[str, Key]] = {"harness": harness_keys()}
    for name, doc in docs(Scenario).items():
        if doc.kind in ("section", "faults") and doc.of is not None:
            out[name] = table_of(doc.of)
    return out
