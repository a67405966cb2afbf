"""Readers: one YAML node to the Python value of one key, each mistake reported at its node.

A reader is ``read(doc, node, label) -> value``; it checks what YAML alone can tell (types, references,
tool names) and leaves ranges to the settings' own validators, which ``read_section`` runs one key at a time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import yaml

from .._validation import did_you_mean
from ..errors import ConfigError, hide_own_frames
from ..expect import Expectation
from ..metrics import REGISTRY
from ..scenario import Scenario
from ..settings.faults import FAILING_TOOL_FAULTS, PROFILES, TOOL_FAULT_KINDS, Faults
from ..settings.prices import price_table
from ..settings.tools import tool_spec
from ..settings.trajectory import rule_of_metric
from .refs import resolve_reference
from .yamldoc import Node, YamlDoc, found, short

__tracebackhide__ = hide_own_frames

Reader = Callable[[YamlDoc, Node, str], Any]

#: Scenario names become pytest item names and replay ids: no '/', '[', ']', '::' or control characters (a line
#: break, a tab, NUL: a replay command pasted into a shell broke on them).
NAME_PATTERN = r"^(?![\s\S]*(?:::|[/\[\]\u0000-\u001f\u007f]))(?=[\s\S]*\S)"


def probe_agent(task: str, env: Any) -> None:
    """Stands in for the agent while one other key is validated."""


def probe_scenario(kwargs: Any) -> Scenario:
    """A Scenario with only these keys (and stand-ins for the required ones): validates them alone."""
    return Scenario(**{"name": "probe", "agent": probe_agent, **kwargs})


def plain(doc: YamlDoc, node: Node, label: str) -> Any:
    return doc.plain(node)


#: A number written with an exponent, which YAML 1.1 reads as a string unless written as 1.0e+8.
EXPONENT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+")


def whole(doc: YamlDoc, node: Node, label: str) -> Any:
    """A whole number; ``100.0`` counts as 100 (as in JSON), anything else is left to the validator."""
    value = doc.plain(node)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and EXPONENT.fullmatch(value.strip()):  # YAML 1.1: 1e8 (no dot) is a string
        number = float(value)
        example = f", e.g. {int(number):_}" if math.isfinite(number) and number.is_integer() and number < 1e18 else ""
        doc.fail(node, f"{label}={value!r} must be a whole number: YAML reads {value.strip()} as text (an exponent "
                       f"needs a decimal point and a sign there, as in 1.0e+8); write the number out{example}")
    return value


def optional(reader: Reader) -> Reader:
    def read(doc: YamlDoc, node: Node, label: str) -> Any:
        if isinstance(node, yaml.ScalarNode) and doc.scalar(node) is None:
            return None
        return reader(doc, node, label)
    return read


def boolean(doc: YamlDoc, node: Node, label: str) -> bool:
    value = doc.plain(node)
    if not isinstance(value, bool):
        doc.fail(node, f"{label}={short(value)} must be true or false")
    return value


def reason(doc: YamlDoc, node: Node, label: str) -> str:
    value = doc.plain(node)
    if not isinstance(value, str) or not value.strip():
        doc.fail(node, f"{label}={short(value)} must be the reason, a non-empty string (why this scenario is "
                       "expected to fail)")
    return value


def string_list(doc: YamlDoc, node: Node, label: str) -> list[str]:
    if not isinstance(node, yaml.SequenceNode):
        doc.fail(node, f"{label}={found(doc, node)} must be a list of strings")
    out = []
    for i, item in enumerate(node.value):
        value = doc.plain(item)
        if not isinstance(value, str):
            doc.fail(item, f"{label}[{i}]={short(value)} must be a string")
        out.append(value)
    return out


_EXPECTED = {
    "agent": "a callable agent(task, env)",
    "world": "a zero-argument factory (a class or function)",
    "check": "a callable check(world, output) -> bool",
    "tools": "a tool function (decorate it with @tool)",
}


def callable_ref(doc: YamlDoc, node: Node, label: str, what: str | None = None) -> Any:
    ref = doc.plain(node)
    if not isinstance(ref, str):
        doc.fail(node, f"{label}={found(doc, node)} must be a reference 'package.module:attr' (a string)")
    obj = doc.check(node, lambda: resolve_reference(ref, label))
    if not callable(obj):
        doc.fail(node, f"{label}={ref!r} is not callable (it is {type(obj).__name__} {short(obj, 40)}); "
                       f"{label} must be {what or _EXPECTED.get(label, 'callable')}")
    return obj


def tools(doc: YamlDoc, node: Node, label: str) -> Any:
    """A list of references to tools, or one reference to a list/tuple of tools (or to one tool)."""
    if isinstance(node, yaml.SequenceNode):
        tools = [callable_ref(doc, item, f"{label}[{i}]", _EXPECTED["tools"]) for i, item in enumerate(node.value)]
        items = list(node.value)
    elif isinstance(node, yaml.ScalarNode) and isinstance(doc.scalar(node), str):
        ref = doc.scalar(node)
        obj = doc.check(node, lambda: resolve_reference(ref, label))
        if callable(obj) and not isinstance(obj, type):
            tools, items = [obj], [node]
        elif isinstance(obj, (list, tuple)):
            for i, t in enumerate(obj):
                if not callable(t):
                    doc.fail(node, f"{label}={ref!r}: item {i} ({short(t, 40)}) is not callable; each tool must be "
                                   f"{_EXPECTED['tools']}")
            tools, items = obj, [node] * len(obj)
        else:
            doc.fail(node, f"{label}={ref!r} must name a list or tuple of tools, got {type(obj).__name__} "
                           f"{short(obj, 40)}")
    else:
        doc.fail(node, f"{label}={found(doc, node)} must be a list of references 'package.module:attr' "
                       "(or one reference to a list of tools)")
    seen: set[str] = set()
    names = []
    specs = {}
    for t, item in zip(tools, items, strict=True):
        spec = doc.check(item, lambda t=t: tool_spec(t))
        if spec.name in seen:
            doc.check(item, lambda: probe_scenario({"tools": list(tools)}))
        seen.add(spec.name)
        names.append(spec.name)
        specs[spec.name] = spec
    doc.tool_names = tuple(names)
    doc.tool_specs = specs
    return tools


def tool_name(doc: YamlDoc, node: Node, label: str) -> str:
    """One of the scenario's tools, by name (a trajectory rule's ``tool`` and ``after``)."""
    value = doc.plain(node)
    if not isinstance(value, str) or not value:
        doc.fail(node, f"{label}={short(value)} must be the name of one of the scenario's tools")
    known_tool(doc, node, value, label)
    return value


def task(doc: YamlDoc, node: Node, label: str) -> Any:
    if isinstance(node, yaml.MappingNode):  # {generate: package.module:attr}: a task generator generate(rng)
        entries = mapping_node(doc, node, label, "'generate' to a task generator 'package.module:attr'")
        unknown = sorted(set(entries) - {"generate"})
        if unknown or "generate" not in entries:
            doc.fail(node, f"{label}: a mapping takes exactly one key, 'generate' (a task generator "
                           f"'package.module:attr' called as generate(rng) -> task); got keys {short(sorted(entries))}")
        return callable_ref(doc, entries["generate"][1], f"{label}.generate",
                            "a task generator generate(rng) -> str")
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            value = doc.plain(item)
            if not isinstance(value, str):
                doc.fail(item, f"{label}[{i}]={short(value)} must be a string (one task per item)")
    elif not isinstance(doc.plain(node), str):
        doc.fail(node, f"{label}={found(doc, node)} must be a string or a non-empty list of strings")
    return doc.plain(node)


def name(doc: YamlDoc, node: Node, label: str) -> Any:
    value = doc.plain(node)
    doc.check(node, lambda: probe_scenario({"name": value}))
    if not re.search(NAME_PATTERN, value):
        doc.fail(node, f"{label}={value!r} must not contain '/', '[', ']', '::' or a control character (a "
                       "line break, a tab): it becomes the pytest item's name and the replay id")
    return value


def mapping_node(doc: YamlDoc, node: Node, label: str, what: str) -> dict[str, tuple[Node, Node]]:
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={found(doc, node)} must be a mapping of {what}")
    return doc.items(node)


def tool_mix(doc: YamlDoc, node: Node, label: str) -> dict[str, Any]:
    entries = mapping_node(doc, node, label, f"fault kind to weight (kinds: {', '.join(FAILING_TOOL_FAULTS)})")
    out = {}
    for kind, (knode, vnode) in entries.items():
        weight = doc.plain(vnode)
        if kind not in FAILING_TOOL_FAULTS:
            try:
                Faults(mix={kind: 1.0})
            except ConfigError as exc:
                hint = "" if kind in TOOL_FAULT_KINDS else did_you_mean(kind, FAILING_TOOL_FAULTS)
                doc.fail(knode, f"{exc}{hint}")
        # the weight alone, next to a positive one: only the sum check is left for the whole mix below
        companion = {"timeout" if kind == "error" else "error": 1.0}
        doc.check(vnode, lambda kind=kind, weight=weight, companion=companion:
                  Faults(mix={kind: weight, **companion}), weight)
        out[kind] = weight
    doc.check(node, lambda: Faults(mix=out))
    return out


def known_tool(doc: YamlDoc, node: Node, name: str, label: str) -> None:
    if name not in doc.tool_names:
        declared = ", ".join(doc.tool_names) if doc.tool_names else "none declared"
        doc.fail(node, f"{label}: {name!r} is not one of the scenario's tools{did_you_mean(name, doc.tool_names)}; "
                       f"tools: {declared}")


def outage_tools(doc: YamlDoc, node: Node, label: str) -> list[str]:
    names = string_list(doc, node, label)
    for item, name in zip(node.value, names, strict=True):
        known_tool(doc, item, name, label)
    return names


def expect(doc: YamlDoc, node: Node, label: str) -> dict[str, Any]:
    entries = mapping_node(doc, node, label, "metric name to a threshold string, e.g. completion_rate: '>= 0.90'")
    good = {"rate": "<= 1", "distribution": "<= 0", "count": "== 0"}
    out = {}
    for key, (knode, vnode) in entries.items():
        metric = "completion_rate" if key.startswith("pass^") else key.partition(".")[0]
        rule = rule_of_metric(metric)
        if rule is not None and rule not in doc.rule_names:
            names = doc.rule_names
            doc.fail(knode, f"{label}: {key!r} names no trajectory rule of this scenario{did_you_mean(rule, names)}; "
                            f"rules: {', '.join(names) or 'none declared'} (declare it under trajectory: rules:, "
                            "with name:)")
        if metric not in REGISTRY or key.startswith("pass^"):
            doc.check(knode, lambda key=key: Expectation.parse(key, ">= 0"))
        sample = "<= 0, cap 1" if key == f"{metric}.mean" else good[REGISTRY[metric].kind]
        doc.check(knode, lambda key=key, sample=sample: Expectation.parse(key, sample))
        expr = doc.plain(vnode)
        doc.check(vnode, lambda key=key, expr=expr: parse_expectation(key, expr))
        out[key] = expr
    return out


def parse_expectation(key: str, expr: Any) -> Expectation:
    try:
        return Expectation.parse(key, expr)
    except OverflowError:  # a count threshold too large for a float
        raise ConfigError(f"expect[{key!r}]={expr!r}: the threshold is too large") from None


def prices(doc: YamlDoc, node: Node, label: str) -> dict[str, Any]:
    entries = mapping_node(doc, node, label, "model name to [input_usd_per_mtok, output_usd_per_mtok]")
    out: dict[str, Any] = {}
    expected = "must be [input_usd_per_mtok, output_usd_per_mtok] or {input: ..., output: ...} with both numbers >= 0"
    for model, (_, vnode) in entries.items():
        where = f"{label}[{model!r}]"
        if isinstance(vnode, yaml.MappingNode):
            fields = doc.items(vnode)
            for key, (k, _) in fields.items():
                if key not in ("input", "output"):
                    doc.fail(k, f"{where}: unknown key {key!r}{did_you_mean(key, ('input', 'output'))}; "
                                "valid keys: input, output")
            for key in ("input", "output"):
                if key not in fields:
                    doc.fail(vnode, f"{where}: missing key {key!r} ({expected})")
            numbers = [(fields[k][1], doc.plain(fields[k][1])) for k in ("input", "output")]
        elif isinstance(vnode, yaml.SequenceNode) and len(vnode.value) == 2:
            numbers = [(item, doc.plain(item)) for item in vnode.value]
        else:
            doc.fail(vnode, f"{where}={found(doc, vnode)} {expected}")
        for item, value in numbers:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                doc.fail(item, f"{where}: {short(value)} is not a price; {where} {expected}")
        value = doc.plain(vnode)
        doc.check(vnode, lambda model=model, value=value: price_table({model: value}))
        out[model] = value
    return out


def profile(doc: YamlDoc, node: Node, label: str) -> Any:
    value = doc.plain(node)
    if not isinstance(value, str) or value not in PROFILES:
        doc.fail(node, f"{label}={short(value)} is not a fault profile; valid profiles: {', '.join(PROFILES)}"
                       f"{did_you_mean(value, PROFILES) if isinstance(value, str) else ''}")
    return value


