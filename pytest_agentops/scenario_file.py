"""Scenario files: YAML documents that describe ``Scenario``s, loaded safely, with file:line:column errors.

A file holds one scenario mapping or a list of them. Keys mirror ``Scenario``; Python objects are named
``package.module:attr``. The YAML is composed into a node tree (never ``yaml.load``): every key and value
keeps its position, so each mistake is reported where it was written. Values are checked by the same
validators as Python scenarios (``Scenario``, ``Faults``, ``Approver``, ``Expectation``), one key at a time,
so the error lands on the offending node.

The keys of each section live in tables (``SCENARIO_KEYS``, ``FAULTS_KEYS``, ``HARNESS_KEYS``, ...): a new
key is one ``Key(...)`` entry with its reader and its JSON Schema fragment. The shipped
``scenario.schema.json`` is generated from these tables (``python -m pytest_agentops.scenario_file``).
"""

from __future__ import annotations

import difflib
import importlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from .errors import ConfigError, ScenarioFileError
from .expect import Expectation
from .faults import FAILING_TOOL_FAULTS, PROFILES, TOOL_FAULT_KINDS, Faults
from .harness.budget import Budget, DailyUsers, price_table
from .harness.escalation import Escalation  # escalation layer
from .harness.gates import Approver
from .harness.tools import tool_spec
from .llm import (  # model boundary
    API_FAULT_KINDS,
    DRIFT_KINDS,
    HTTP_FAULT_KINDS,
    OUTPUT_FAULT_KINDS,
    Drift,
    FakeLLM,
    HttpFaults,
    ModelFaults,
)
from .scenario import Scenario

__all__ = [
    "APPROVER_KEYS",
    "FAULTS_KEYS",
    "HARNESS_KEYS",
    "SCENARIO_KEYS",
    "SCHEMA_PATH",
    "Key",
    "ScenarioEntry",
    "build_schema",
    "layer_reader",
    "load_scenario_entries",
    "load_scenario_text",
    "load_scenarios",
    "resolve_reference",
]

#: The JSON Schema shipped with the package (regenerate with ``python -m pytest_agentops.scenario_file``).
SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")

_STD = "tag:yaml.org,2002:"
_MERGE = _STD + "merge"
_SPECIAL_PLAIN = frozenset((_MERGE, _STD + "value"))
_ALLOWED_TAGS = frozenset(_STD + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp"))
_END = r"(?![\s\S])"  # end of string in both Python and ECMA regexes (``$`` also matches before a final newline)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
REFERENCE_PATTERN = rf"^{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*{_END}"
#: Scenario names become pytest item names and replay ids: no '/', '[', ']', '::' or line breaks.
NAME_PATTERN = r"^(?![\s\S]*(?:::|[/\[\]\r\n]))(?=[\s\S]*\S)"
_PERCENT = re.compile(r"^\s*\d+(?:\.\d+)?\s*%\s*$")

Node = yaml.Node
Reader = Callable[["_Doc", Node, str], Any]


class ScenarioLoader(yaml.SafeLoader):
    """The YAML loader of scenario files: a ``SafeLoader`` used only to compose a node tree (every node
    keeps its ``start_mark``: line and column) and to build plain scalars; it never builds Python objects
    from tags."""


# --- references ``package.module:attr`` ------------------------------------------------------------------


def resolve_reference(ref: str, key: str = "reference") -> Any:
    """The object named by ``ref`` (``package.module:attr``, attr may be dotted), with a clear ConfigError
    for a malformed reference, a module that cannot be imported, and a missing attribute."""
    if not isinstance(ref, str) or not re.search(REFERENCE_PATTERN, ref):
        hint = ""
        if isinstance(ref, str) and ":" not in ref and re.fullmatch(rf"{_IDENT}(?:\.{_IDENT})+", ref):
            module, _, attr = ref.rpartition(".")
            hint = f" (did you mean '{module}:{attr}'?)"
        raise ConfigError(f"{key}={ref!r} must be a reference 'package.module:attr' (the module's import path, "
                          f"a colon, then the attribute){hint}")
    module_name, _, attr_path = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key}={ref!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); "
                          "is the package installed or on sys.path?") from None
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"{key}={ref!r}: importing module {module_name!r} raised {type(exc).__name__}: "
                          f"{exc}") from None
    obj: Any = module
    where = module_name
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(obj) if not n.startswith("__")]
            raise ConfigError(f"{key}={ref!r}: {where!r} has no attribute {part!r}{_did_you_mean(part, names)}"
                              ) from None
        except Exception as exc:
            raise ConfigError(f"{key}={ref!r}: reading {part!r} of {where!r} raised {type(exc).__name__}: "
                              f"{exc}") from None
        where = f"{where}:{part}" if where == module_name else f"{where}.{part}"
    return obj


def _did_you_mean(name: str, options: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the document: nodes, positions, errors --------------------------------------------------------------


class _Doc:
    """One file being read: its loader (to build scalars), the errors' location, and per-scenario state."""

    def __init__(self, loader: ScenarioLoader, path: str):
        self.loader = loader
        self.path = path
        self._items: dict[int, dict[str, tuple[Node, Node]]] = {}
        self._prefix: list[str] = []
        self.tool_names: tuple[str, ...] = ()

    def fail(self, node: Node | yaml.Mark | None, message: str) -> NoReturn:
        mark = node if isinstance(node, yaml.Mark) else getattr(node, "start_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise ScenarioFileError("".join(self._prefix) + message, self.path, line, column)

    @contextmanager
    def within(self, prefix: str) -> Iterator[None]:
        """Messages raised inside name the section: ``faults: rate=1.5 must be ...``."""
        self._prefix.append(prefix)
        try:
            yield
        finally:
            self._prefix.pop()

    def check(self, node: Node, validate: Callable[[], Any], value: Any = None) -> Any:
        """Run an existing validator; its ConfigError becomes a ScenarioFileError located at ``node``."""
        try:
            return validate()
        except ScenarioFileError:
            raise
        except ConfigError as exc:
            message = str(exc)
            if isinstance(value, str) and _PERCENT.match(value):
                message += f" (write a share: {float(value.strip().rstrip('%').strip()) / 100:g} for {value.strip()})"
            self.fail(node, message)

    # -- node access ----------------------------------------------------------------------------------
    def scalar(self, node: Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:  # e.g. a date such as 2024-13-45
            self.fail(node, f"cannot read the value {node.value!r}: {getattr(exc, 'problem', None) or exc}")

    def plain(self, node: Node) -> Any:
        """The node as plain data (str, int, float, bool, None, date, list, dict with string keys)."""
        if isinstance(node, yaml.MappingNode):
            return {k: self.plain(v) for k, (_, v) in self.items(node).items()}
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(v) for v in node.value]
        return self.scalar(node)

    def items(self, node: yaml.MappingNode) -> dict[str, tuple[Node, Node]]:
        """A mapping's entries as ``{key: (key_node, value_node)}``: string keys only, no duplicate keys,
        merge keys (``<<: *base``) applied with explicit keys winning."""
        cached = self._items.get(id(node))
        if cached is not None:
            return cached
        seen: dict[str, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self._key(key_node)
            if key in seen:
                self.fail(key_node, f"duplicate key {key!r} (first given at line {seen[key].start_mark.line + 1}); "
                                    "YAML would silently keep only the last one")
            seen[key] = key_node
        try:
            self.loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            self.fail(exc.problem_mark, f"bad merge key '<<': {exc.problem}")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            out[self._key(key_node)] = (key_node, value_node)
        self._items[id(node)] = out
        return out

    def _key(self, node: Node) -> str:
        if isinstance(node, yaml.ScalarNode) and node.tag == _STD + "str":
            return str(node.value)
        if isinstance(node, yaml.ScalarNode):
            self.fail(node, f"key {self.scalar(node)!r} must be a string; quote it: '{node.value}'")
        self.fail(node, f"a key must be a string, got {_kind(node)}")


def _kind(node: Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a value"


def _found(doc: _Doc, node: Node) -> str:
    """What the user wrote, for messages: the value's (shortened) repr, ``None`` for null."""
    return _short(doc.plain(node))


def _check_tree(doc: _Doc, root: Node) -> None:
    """Refuse tags that would build Python objects (or anything beyond plain data) and recursive aliases."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    merge_keys = set()  # '<<' in key position: a merge key (applied by ``_Doc.items``)
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            state[id(node)] = 2
            continue
        mark = state.get(id(node))
        if mark == 2:
            continue
        if mark == 1:
            doc.fail(node, "recursive alias: a node that contains itself cannot describe a scenario")
        if node.tag in _SPECIAL_PLAIN and isinstance(node, yaml.ScalarNode) and node.value in ("<<", "="):
            if node.tag == _MERGE and id(node) in merge_keys:
                continue
            doc.fail(node, f"the plain value {node.value!r} has a special meaning in YAML; quote it: '{node.value}'")
        if node.tag not in _ALLOWED_TAGS:
            tag = "!!" + node.tag[len(_STD):] if node.tag.startswith(_STD) else node.tag
            doc.fail(node, f"tag {tag!r} is not allowed: scenario files are loaded safely and never build Python "
                           "objects from YAML tags; name a Python object as a string 'package.module:attr'")
        state[id(node)] = 1
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            merge_keys.update(id(k) for k, _ in node.value if k.tag == _MERGE)
            for k, v in reversed(node.value):
                stack.append((v, False))
                stack.append((k, False))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, False) for v in reversed(node.value))


# --- readers: one YAML node -> the Python value of one key ------------------------------------------------


def _plain(doc: _Doc, node: Node, label: str) -> Any:
    return doc.plain(node)


def _whole(doc: _Doc, node: Node, label: str) -> Any:
    """A whole number; ``100.0`` counts as 100 (as in JSON), anything else is left to the validator."""
    value = doc.plain(node)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _optional(reader: Reader) -> Reader:
    def read(doc: _Doc, node: Node, label: str) -> Any:
        if isinstance(node, yaml.ScalarNode) and doc.scalar(node) is None:
            return None
        return reader(doc, node, label)
    return read


def _boolean(doc: _Doc, node: Node, label: str) -> bool:
    value = doc.plain(node)
    if not isinstance(value, bool):
        doc.fail(node, f"{label}={_short(value)} must be true or false")
    return value


def _reason(doc: _Doc, node: Node, label: str) -> str:
    value = doc.plain(node)
    if not isinstance(value, str) or not value.strip():
        doc.fail(node, f"{label}={_short(value)} must be the reason, a non-empty string (why this scenario is "
                       "expected to fail)")
    return value


def _string_list(doc: _Doc, node: Node, label: str) -> list[str]:
    if not isinstance(node, yaml.SequenceNode):
        doc.fail(node, f"{label}={_found(doc, node)} must be a list of strings")
    out = []
    for i, item in enumerate(node.value):
        value = doc.plain(item)
        if not isinstance(value, str):
            doc.fail(item, f"{label}[{i}]={_short(value)} must be a string")
        out.append(value)
    return out


_EXPECTED = {
    "agent": "a callable agent(task, env)",
    "world": "a zero-argument factory (a class or function)",
    "check": "a callable check(world, output) -> bool",
    "tools": "a tool function (decorate it with @tool)",
}


def _callable_ref(doc: _Doc, node: Node, label: str, what: str | None = None) -> Any:
    ref = doc.plain(node)
    if not isinstance(ref, str):
        doc.fail(node, f"{label}={_found(doc, node)} must be a reference 'package.module:attr' (a string)")
    obj = doc.check(node, lambda: resolve_reference(ref, label))
    if not callable(obj):
        doc.fail(node, f"{label}={ref!r} is not callable (it is {type(obj).__name__} {_short(obj, 40)}); "
                       f"{label} must be {what or _EXPECTED.get(label, 'callable')}")
    return obj


def _tools(doc: _Doc, node: Node, label: str) -> Any:
    """A list of references to tools, or one reference to a list/tuple of tools (or to one tool)."""
    if isinstance(node, yaml.SequenceNode):
        tools = [_callable_ref(doc, item, f"{label}[{i}]", _EXPECTED["tools"]) for i, item in enumerate(node.value)]
        items = list(node.value)
    elif isinstance(node, yaml.ScalarNode) and isinstance(doc.scalar(node), str):
        ref = doc.scalar(node)
        obj = doc.check(node, lambda: resolve_reference(ref, label))
        if callable(obj) and not isinstance(obj, type):
            tools, items = [obj], [node]
        elif isinstance(obj, (list, tuple)):
            for i, t in enumerate(obj):
                if not callable(t):
                    doc.fail(node, f"{label}={ref!r}: item {i} ({_short(t, 40)}) is not callable; each tool must be "
                                   f"{_EXPECTED['tools']}")
            tools, items = obj, [node] * len(obj)
        else:
            doc.fail(node, f"{label}={ref!r} must name a list or tuple of tools, got {type(obj).__name__} "
                           f"{_short(obj, 40)}")
    else:
        doc.fail(node, f"{label}={_found(doc, node)} must be a list of references 'package.module:attr' "
                       "(or one reference to a list of tools)")
    seen: set[str] = set()
    names = []
    for t, item in zip(tools, items, strict=True):
        name = doc.check(item, lambda t=t: tool_spec(t)).name
        if name in seen:
            doc.check(item, lambda: Scenario(name="probe", agent=_probe_agent, tools=list(tools)))
        seen.add(name)
        names.append(name)
    doc.tool_names = tuple(names)
    return tools


def _task(doc: _Doc, node: Node, label: str) -> Any:
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            value = doc.plain(item)
            if not isinstance(value, str):
                doc.fail(item, f"{label}[{i}]={_short(value)} must be a string (one task per item)")
    elif not isinstance(doc.plain(node), str):
        doc.fail(node, f"{label}={_found(doc, node)} must be a string or a non-empty list of strings")
    return doc.plain(node)


def _name(doc: _Doc, node: Node, label: str) -> Any:
    value = doc.plain(node)
    doc.check(node, lambda: Scenario(name=value, agent=_probe_agent))
    if not re.search(NAME_PATTERN, value):
        doc.fail(node, f"{label}={value!r} must not contain '/', '[', ']', '::' or a line break: it becomes the "
                       "pytest item's name and the replay id")
    return value


def _mapping_node(doc: _Doc, node: Node, label: str, what: str) -> dict[str, tuple[Node, Node]]:
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={_found(doc, node)} must be a mapping of {what}")
    return doc.items(node)


def _mix(doc: _Doc, node: Node, label: str) -> dict[str, Any]:
    entries = _mapping_node(doc, node, label, f"fault kind to weight (kinds: {', '.join(FAILING_TOOL_FAULTS)})")
    out = {}
    for kind, (knode, vnode) in entries.items():
        weight = doc.plain(vnode)
        if kind not in FAILING_TOOL_FAULTS:
            try:
                Faults(mix={kind: 1.0})
            except ConfigError as exc:
                hint = "" if kind in TOOL_FAULT_KINDS else _did_you_mean(kind, FAILING_TOOL_FAULTS)
                doc.fail(knode, f"{exc}{hint}")
        # the weight alone, next to a positive one: only the sum check is left for the whole mix below
        companion = {"timeout" if kind == "error" else "error": 1.0}
        doc.check(vnode, lambda kind=kind, weight=weight, companion=companion:
                  Faults(mix={kind: weight, **companion}), weight)
        out[kind] = weight
    doc.check(node, lambda: Faults(mix=out))
    return out


def _per_tool(doc: _Doc, node: Node, label: str) -> dict[str, Any]:
    entries = _mapping_node(doc, node, label, "tool name to a rate or {rate, mix}")
    out: dict[str, Any] = {}
    for tool, (knode, vnode) in entries.items():
        _known_tool(doc, knode, tool, f"{label}[{tool!r}]")
        if isinstance(vnode, yaml.MappingNode):
            out[tool] = _read_section(doc, vnode, PER_TOOL_KEYS, lambda kw, tool=tool: Faults(per_tool={tool: kw}),
                                      where=f"{label}[{tool!r}]: ")
        else:
            rate = doc.plain(vnode)
            doc.check(vnode, lambda tool=tool, rate=rate: Faults(per_tool={tool: rate}), rate)
            out[tool] = rate
    return out


def _known_tool(doc: _Doc, node: Node, name: str, label: str) -> None:
    if name not in doc.tool_names:
        declared = ", ".join(doc.tool_names) if doc.tool_names else "none declared"
        doc.fail(node, f"{label}: {name!r} is not one of the scenario's tools{_did_you_mean(name, doc.tool_names)}; "
                       f"tools: {declared}")


def _outage_tools(doc: _Doc, node: Node, label: str) -> list[str]:
    names = _string_list(doc, node, label)
    for item, name in zip(node.value, names, strict=True):
        _known_tool(doc, item, name, label)
    return names


def _expect(doc: _Doc, node: Node, label: str) -> dict[str, Any]:
    from .metrics import REGISTRY

    entries = _mapping_node(doc, node, label, "metric name to a threshold string, e.g. completion_rate: '>= 0.90'")
    good = {"rate": "<= 1", "distribution": "<= 0", "count": "== 0"}
    out = {}
    for key, (knode, vnode) in entries.items():
        metric = key.partition(".")[0]
        if metric not in REGISTRY:
            doc.check(knode, lambda key=key: Expectation.parse(key, ">= 0"))
        doc.check(knode, lambda key=key, metric=metric: Expectation.parse(key, good[REGISTRY[metric].kind]))
        expr = doc.plain(vnode)
        doc.check(vnode, lambda key=key, expr=expr: _parse_expectation(key, expr))
        out[key] = expr
    return out


def _parse_expectation(key: str, expr: Any) -> Expectation:
    try:
        return Expectation.parse(key, expr)
    except OverflowError:  # a count threshold too large for a float
        raise ConfigError(f"expect[{key!r}]={expr!r}: the threshold is too large") from None


def _prices(doc: _Doc, node: Node, label: str) -> dict[str, Any]:
    entries = _mapping_node(doc, node, label, "model name to [input_usd_per_mtok, output_usd_per_mtok]")
    out: dict[str, Any] = {}
    expected = "must be [input_usd_per_mtok, output_usd_per_mtok] or {input: ..., output: ...} with both numbers >= 0"
    for model, (_, vnode) in entries.items():
        where = f"{label}[{model!r}]"
        if isinstance(vnode, yaml.MappingNode):
            fields = doc.items(vnode)
            for key, (k, _) in fields.items():
                if key not in ("input", "output"):
                    doc.fail(k, f"{where}: unknown key {key!r}{_did_you_mean(key, ('input', 'output'))}; "
                                "valid keys: input, output")
            for key in ("input", "output"):
                if key not in fields:
                    doc.fail(vnode, f"{where}: missing key {key!r} ({expected})")
            numbers = [(fields[k][1], doc.plain(fields[k][1])) for k in ("input", "output")]
        elif isinstance(vnode, yaml.SequenceNode) and len(vnode.value) == 2:
            numbers = [(item, doc.plain(item)) for item in vnode.value]
        else:
            doc.fail(vnode, f"{where}={_found(doc, vnode)} {expected}")
        for item, value in numbers:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                doc.fail(item, f"{where}: {_short(value)} is not a price; {where} {expected}")
        value = doc.plain(vnode)
        doc.check(vnode, lambda model=model, value=value: price_table({model: value}))
        out[model] = value
    return out


def layer_reader(build: Callable[[Mapping[str, Any], str], Any], keys: Iterable[str]) -> Reader:
    """The reader of a harness layer's section, for a layer class that builds itself from plain data
    (``build(data, where)``, e.g. ``Budget.from_mapping``) and raises ConfigError.

    Unknown keys are errors at the key, with a suggestion; each value is first tried alone, so that its
    error points at it; what only fails in combination is reported at the section.
    """
    known = tuple(keys)

    def read(doc: _Doc, node: Node, label: str) -> Any:
        entries = _mapping_node(doc, node, label, ", ".join(known))
        for key, (key_node, _) in entries.items():
            if key not in known:
                doc.fail(key_node, f"{label}: unknown key {key!r}{_did_you_mean(key, known)}; "
                                   f"valid keys: {', '.join(known)}")
        data = {}
        for key, (_, value_node) in entries.items():
            value = doc.plain(value_node)
            doc.check(value_node, lambda key=key, value=value: build({key: value}, label), value)
            data[key] = value
        return doc.check(node, lambda: build(data, label))

    return read


def _profile(doc: _Doc, node: Node, label: str) -> Any:
    value = doc.plain(node)
    if not isinstance(value, str) or value not in PROFILES:
        doc.fail(node, f"{label}={_short(value)} is not a fault profile; valid profiles: {', '.join(PROFILES)}"
                       f"{_did_you_mean(value, PROFILES) if isinstance(value, str) else ''}")
    return value


# --- the key tables --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One key of a scenario-file section: how its node is read, where the value goes, its JSON Schema.

    ``target`` is the keyword argument the value becomes: a field name (default: the key's name),
    ``"field.sub"`` to set ``field[sub]`` of a mapping field, or ``""`` to merge
    a dict of keyword arguments (a sub-section such as ``harness``).
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


def _table(*keys: Key) -> dict[str, Key]:
    return {k.name: k for k in keys}


def _probe_agent(task: str, env: Any) -> None:
    """Stands in for the agent while one other key is validated."""


def _probe_scenario(kwargs: Mapping[str, Any]) -> Scenario:
    return Scenario(**{"name": "probe", "agent": _probe_agent, **kwargs})


def _probe_faults(kwargs: Mapping[str, Any]) -> Faults:
    rest = {k: v for k, v in kwargs.items() if k != "profile"}
    return Faults.profile(kwargs["profile"], **rest) if "profile" in kwargs else Faults(**rest)


# JSON Schema fragments -----------------------------------------------------------------------------------
_NULL = {"type": "null"}
_REF = {"type": "string", "pattern": REFERENCE_PATTERN}
_RATE = {"type": "number", "minimum": 0, "maximum": 1}
_SECONDS0 = {"type": "number", "minimum": 0}
_SECONDS = {"type": "number", "exclusiveMinimum": 0}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def _mix_schema() -> dict[str, Any]:
    return {"type": "object", "minProperties": 1, "propertyNames": {"enum": list(FAILING_TOOL_FAULTS)},
            "additionalProperties": {"type": "number", "minimum": 0},
            # at least one positive weight
            "anyOf": [{"required": [k], "properties": {k: {"exclusiveMinimum": 0}}} for k in FAILING_TOOL_FAULTS]}


def _section_schema(table: Mapping[str, Key]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": {name: key.json_schema() for name, key in table.items()}}
    required = [name for name, key in table.items() if key.required]
    if required:
        schema["required"] = required
    return schema


_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_EXP_NUM = _NUM + r"[eE][-+]?\d+"  # a number with an exponent: its range is checked by the loader only
_ANY_NUM = _NUM + r"(?:[eE][-+]?\d+)?"
_NEG_ZERO = r"-(?:0+(?:\.0*)?|\.0+)"
_RATE_NUM = rf"(?:\+?(?:0+(?:\.\d*)?|0*1(?:\.0*)?|\.\d+)|{_NEG_ZERO}|{_EXP_NUM})"
_WHOLE_NUM = rf"(?:\+?(?:\d+(?:\.0*)?|\.0+)|{_NEG_ZERO}|{_EXP_NUM})"
_ZERO = r"[-+]?(?:0+(?:\.0*)?|\.0+)(?:[eE][-+]?\d+)?"
_QUANTILE = r"(?:(?:[1-9]\d?|0[1-9])(?:\.\d+)?|0{1,2}\.\d*[1-9]\d*)"


def _expect_schema() -> dict[str, Any]:
    """Threshold expressions per metric kind, mirroring ``Expectation.parse`` (metrics from the registry)."""
    from .metrics import REGISTRY

    patterns: dict[str, Any] = {}
    for name, defn in sorted(REGISTRY.items()):
        metric = re.escape(name)
        if defn.kind == "rate":
            key, expr = rf"^{metric}\.?{_END}", rf"^\s*(?:>=|<=|>|<)\s*{_RATE_NUM}\s*$"
        elif defn.kind == "distribution":
            key, expr = rf"^{metric}\.p{_QUANTILE}$", rf"^\s*(?:>=|<=|>|<)\s*{_ANY_NUM}\s*$"
        else:
            key, expr = rf"^{metric}\.?{_END}", rf"^\s*(?:==\s*{_ZERO}|(?:<=|<)\s*{_WHOLE_NUM})\s*$"
        patterns[key] = {"type": "string", "pattern": expr, "description": f"{defn.kind}: {defn.description}"}
    return {"type": "object", "additionalProperties": False, "patternProperties": patterns}


def _prices_schema() -> dict[str, Any]:
    price = {"type": "number", "minimum": 0}
    return {"type": "object", "additionalProperties": {"anyOf": [
        {"type": "array", "minItems": 2, "maxItems": 2, "items": price},
        {"type": "object", "additionalProperties": False, "required": ["input", "output"],
         "properties": {"input": price, "output": price}}]}}


PER_TOOL_KEYS: dict[str, Key] = _table(
    Key("rate", _plain, _RATE, "share of this tool's calls that fail (default: the scenario-wide rate)"),
    Key("mix", _mix, _mix_schema, "this tool's fault kinds and their weights"),
)


def _per_tool_schema() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"anyOf": [_RATE, _section_schema(PER_TOOL_KEYS)]}}


#: ``faults:`` keys (``Faults`` fields). ``profile`` picks low/mid/high rates; other keys override them.
FAULTS_KEYS: dict[str, Key] = _table(
    Key("profile", _profile, {"enum": list(PROFILES)},
        "named profile: none, low (3% of tool calls fail), mid (8%), high (15%); other keys override it"),
    Key("rate", _plain, _RATE, "share of tool calls that fail, 0..1"),
    Key("mix", _mix, _mix_schema, f"fault kinds and weights; kinds: {', '.join(FAILING_TOOL_FAULTS)}"),
    Key("per_tool", _per_tool, _per_tool_schema, "per-tool overrides: tool name -> rate or {rate, mix}"),
    Key("latency", _plain, _RATE, "share of tool calls that are slow"),
    Key("latency_s", _plain, _SECONDS0, "mean extra virtual seconds of a slow call"),
    Key("outage", _plain, _RATE, "chance that one tool is down for a whole trial"),
    Key("outage_tools", _outage_tools, _STRINGS, "the tools an outage may hit (default: any)"),
    Key("timeout_s", _plain, _SECONDS0, "how long an injected timeout takes, virtual seconds"),
    Key("retry_after_s", _plain, _SECONDS0, "retry-after of an injected rate limit, virtual seconds"),
)

#: ``approver:`` keys (``Approver`` fields): the simulated human who answers ``env.confirm``.
APPROVER_KEYS: dict[str, Key] = _table(
    Key("approve", _plain, _RATE, "probability that the human approves a confirmation"),
    Key("latency_s", _plain, _SECONDS0, "mean virtual seconds the human takes to answer"),
)

#: ``harness:`` keys: the harness layers of a scenario. Add a layer's key here: one ``Key`` with its reader,
#: schema and ``target`` (the ``Scenario`` field it sets).
HARNESS_KEYS: dict[str, Key] = _table(
    Key("enforce", _boolean, {"type": "boolean"},
        "block destructive tool calls that have no matching confirmation (the confirmation gate)"),
    Key("scopes", _optional(_string_list), {"anyOf": [_STRINGS, _NULL]},
        "capability scopes granted to the agent; a tool needing another scope is refused (null: all)"),
)


def _read_faults(doc: _Doc, node: Node, label: str) -> Faults | None:
    if isinstance(node, yaml.ScalarNode):
        value = doc.scalar(node)
        if value is None:
            return None
        if isinstance(value, str):
            return doc.check(node, lambda: Faults.profile(_profile(doc, node, label)))
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={_found(doc, node)} must be a profile name ({', '.join(PROFILES)}) or a mapping "
                       f"of {', '.join(FAULTS_KEYS)}")
    with doc.within(f"{label}: "):
        kwargs = _read_section(doc, node, FAULTS_KEYS, _probe_faults)
        return doc.check(node, lambda: _probe_faults(kwargs))


def _read_approver(doc: _Doc, node: Node, label: str) -> Approver:
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={_found(doc, node)} must be a mapping of {', '.join(APPROVER_KEYS)}")
    with doc.within(f"{label}: "):
        kwargs = _read_section(doc, node, APPROVER_KEYS, lambda kw: Approver(**kw))
        return doc.check(node, lambda: Approver(**kwargs))


def _read_harness(doc: _Doc, node: Node, label: str) -> dict[str, Any]:
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={_found(doc, node)} must be a mapping of {', '.join(HARNESS_KEYS)}")
    with doc.within(f"{label}: "):
        return _read_section(doc, node, HARNESS_KEYS, _probe_scenario)


# --- budget layer: the ``budget:`` section (``Budget`` fields; ``users:`` holds ``DailyUsers`` fields) -------
_TOKENS_LIMIT = {"anyOf": [{"type": "integer", "minimum": 1}, _NULL]}
_USD_LIMIT = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, _NULL]}

#: ``budget: users:`` keys: the user a trial's task belongs to and that user's earlier spend that day.
BUDGET_USERS_KEYS: dict[str, Key] = _table(
    Key("count", _whole, {"type": "integer", "minimum": 1}, "users a trial's user is drawn from (uniformly)"),
    Key("earlier_tasks", _plain, {"type": "number", "minimum": 0},
        "mean number of tasks the user already ran that day (Poisson)"),
    Key("tokens_per_task", _whole, {"type": "integer", "minimum": 0}, "mean tokens of an earlier task"),
    Key("usd_per_task", _plain, {"type": "number", "minimum": 0}, "mean USD of an earlier task"),
)


def _read_budget_users(doc: _Doc, node: Node, label: str) -> DailyUsers:
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={_found(doc, node)} must be a mapping of {', '.join(BUDGET_USERS_KEYS)}")
    with doc.within(f"{label}: "):
        kwargs = _read_section(doc, node, BUDGET_USERS_KEYS, lambda kw: DailyUsers(**kw))
        return doc.check(node, lambda: DailyUsers(**kwargs))


#: ``budget:`` keys: token/cost limits (null turns one off), the circuit breaker and the alert fraction.
BUDGET_KEYS: dict[str, Key] = _table(
    Key("per_request_tokens", _optional(_whole), _TOKENS_LIMIT,
        "input + output tokens of one model call (default 4000)"),
    Key("per_task_tokens", _optional(_whole), _TOKENS_LIMIT, "tokens of a whole trial"),
    Key("per_task_usd", _optional(_plain), _USD_LIMIT, "USD of a whole trial (from the price table)"),
    Key("per_user_day_tokens", _optional(_whole), _TOKENS_LIMIT, "tokens of the trial's user over the day"),
    Key("per_user_day_usd", _optional(_plain), _USD_LIMIT, "USD of the trial's user over the day"),
    Key("alert_fraction", _plain, {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "share of a budget at which an alert event is recorded (default 0.8)"),
    Key("users", _read_budget_users, lambda: _section_schema(BUDGET_USERS_KEYS),
        "the user population of the per-user-per-day budgets"),
)


def _read_budget(doc: _Doc, node: Node, label: str) -> Budget | None:
    if isinstance(node, yaml.ScalarNode) and doc.scalar(node) is None:
        return None
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={_found(doc, node)} must be a mapping of {', '.join(BUDGET_KEYS)}")
    with doc.within(f"{label}: "):
        kwargs = _read_section(doc, node, BUDGET_KEYS, lambda kw: Budget(**kw))
        return doc.check(node, lambda: Budget(**kwargs))


def _faults_schema() -> dict[str, Any]:
    return {"if": {"type": "object"}, "then": _section_schema(FAULTS_KEYS),
            "else": {"anyOf": [{"enum": list(PROFILES)}, _NULL]}}


#: Top-level keys of a scenario (``Scenario`` fields), in the order they are read (tools before faults).
SCENARIO_KEYS: dict[str, Key] = _table(
    Key("name", _name, {"type": "string", "pattern": NAME_PATTERN},
        "the scenario's name: the pytest item's name and the replay id", required=True),
    Key("agent", _callable_ref, _REF, "the agent: 'package.module:attr' naming agent(task, env)", required=True),
    Key("task", _task, {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]},
        "the task given to the agent, or a list of tasks used in turn"),
    Key("world", _optional(_callable_ref), {"anyOf": [_REF, _NULL]},
        "'package.module:attr' naming a zero-argument factory of a fresh world per trial"),
    Key("tools", _tools, {"anyOf": [_REF, {"type": "array", "items": _REF}]},
        "the tools: a list of 'package.module:attr', or one reference to a list of tools"),
    Key("check", _optional(_callable_ref), {"anyOf": [_REF, _NULL]},
        "'package.module:attr' naming check(world, output) -> bool: did the agent accomplish the task?"),
    Key("faults", _read_faults, _faults_schema,
        "what goes wrong: a profile name, or a mapping (profile plus overrides, or explicit rates)"),
    Key("approver", _read_approver, lambda: _section_schema(APPROVER_KEYS), "the simulated human approver"),
    Key("harness", _read_harness, lambda: _section_schema(HARNESS_KEYS), "harness layers", target=""),
    Key("budget", _read_budget, lambda: {"anyOf": [_section_schema(BUDGET_KEYS), _NULL]},
        "token/cost limits: the circuit breaker (outcome budget_exceeded) and the 80% alert"),
    Key("expect", _expect, _expect_schema, "expectations: metric -> threshold, e.g. completion_rate: '>= 0.90'"),
    Key("trials", _whole, {"type": "integer", "minimum": 1}, "maximum number of trials"),
    Key("seed", _optional(_whole), {"anyOf": [{"type": "integer", "minimum": 0}, _NULL]},
        "campaign seed (the command line's --agent-chaos-seed wins)"),
    Key("confidence", _plain, {"type": "number", "minimum": 0.5, "exclusiveMaximum": 1},
        "confidence level of the verdicts, e.g. 0.95"),
    Key("concurrency", _whole, {"type": "integer", "minimum": 1}, "trials run at the same time"),
    Key("timeout_s", _plain, _SECONDS, "wall-clock limit per trial, seconds"),
    Key("virtual_timeout_s", _plain, {"anyOf": [_SECONDS, _NULL]}, "virtual-time limit per trial (null: none)"),
    Key("early_stop", _boolean, {"type": "boolean"}, "stop once every verdict is decided"),
    Key("prices", _optional(_prices), lambda: {"anyOf": [_prices_schema(), _NULL]},
        "USD per million tokens: model -> [input, output] or {input, output}"),
    Key("xfail", _optional(_reason), {"anyOf": [{"type": "string", "pattern": r"\S"}, _NULL]},
        "the reason this scenario is expected to fail: it runs as a strict xfail"),
)

_SECTIONS = {"faults": FAULTS_KEYS, "approver": APPROVER_KEYS, "harness": HARNESS_KEYS}
_SECTIONS["budget"] = BUDGET_KEYS  # budget layer

# crash layer (harness/crash.py): ``faults:`` keys of the planned crash; state layer: the top-level ``state:``
FAULTS_KEYS.update(_table(
    Key("crash", _plain, _RATE, "share of trials whose agent crashes once, at a planned tool call"),
    Key("crash_point", _plain, {"enum": ["after", "before", "any"]},
        "where the crash hits its tool call: after (the effect happened, the result is lost), before, or any"),
    Key("crash_steps", _plain, {"anyOf": [{"type": "integer", "minimum": 1}, {
        "type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 1}}]},
        "the executed tool call (1-based) the crash hits: k, or [low, high] drawn uniformly (default [1, 5])"),
    Key("crash_mode", _plain, {"enum": ["in_process", "sigkill"]},
        "in_process: the agent's run is abandoned; sigkill: its child process is killed with SIGKILL"),
    Key("crash_restarts", _whole, {"type": "integer", "minimum": 0}, "restarts allowed after a crash (default 1)"),
))
SCENARIO_KEYS["state"] = Key(
    "state", _plain, {"anyOf": [{"type": "string", "pattern": r"^(memory|sqlite(:.+)?|(redis|rediss|unix)://.+)$"},
                                _NULL]},
    "checkpoint store (env.state): memory, sqlite, sqlite:PATH or redis://HOST:PORT/DB (null: memory, or a "
    "temporary SQLite file under crash_mode sigkill)")

# --- model boundary (llm/): the top-level ``llm:`` and the ``faults:`` keys ``model``, ``drift``, ``http`` --------


def _kinds_schema(kinds: Iterable[str]) -> dict[str, Any]:
    return {"type": "object", "minProperties": 1, "propertyNames": {"enum": list(kinds)},
            "additionalProperties": {"type": "number", "minimum": 0}}


def _boundary_reader(cls: Any) -> Reader:
    """A ``faults:`` key of the model boundary: a profile name (model, drift) or a mapping of its settings."""
    keys = [name for name in cls.__dataclass_fields__ if name != "profile_name"]
    profiles = hasattr(cls, "profile")
    mapping = layer_reader(cls.coerce, [*keys, "profile"] if profiles else keys)

    def read(doc: _Doc, node: Node, label: str) -> Any:
        if profiles and isinstance(node, yaml.ScalarNode):
            value = doc.plain(node)
            return doc.check(node, lambda: cls.coerce(value, label), value)
        return mapping(doc, node, label)

    return _optional(read)


def _read_llm(doc: _Doc, node: Node, label: str) -> Any:
    """``llm:``: a reference to a policy, or ``{policy: ref, model: name, latency_s: seconds}``."""
    what = "a policy: policy(messages, tools) -> assistant message"
    if not isinstance(node, yaml.MappingNode):
        return FakeLLM(_callable_ref(doc, node, label, what))
    entries = _mapping_node(doc, node, label, "policy, model, latency_s")
    known = ("policy", "model", "latency_s")
    for key, (key_node, _) in entries.items():
        if key not in known:
            doc.fail(key_node, f"{label}: unknown key {key!r}{_did_you_mean(key, known)}; "
                               f"valid keys: {', '.join(known)}")
    if "policy" not in entries:
        doc.fail(node, f"{label}: missing key 'policy' ({what}, e.g. pytest_agentops.demo:policy)")
    kwargs: dict[str, Any] = {"policy": _callable_ref(doc, entries["policy"][1], f"{label}.policy", what)}
    for key in ("model", "latency_s"):
        if key in entries:
            value = doc.plain(entries[key][1])
            doc.check(entries[key][1], lambda key=key, value=value: FakeLLM(kwargs["policy"], **{key: value}), value)
            kwargs[key] = value
    return doc.check(node, lambda: FakeLLM(**kwargs))


_TEXTS = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
_MODEL_FAULTS_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {
    "profile": {"enum": list(PROFILES)}, "rate": _RATE, "mix": _kinds_schema(API_FAULT_KINDS),
    "output_rate": _RATE, "output_mix": _kinds_schema(OUTPUT_FAULT_KINDS), "retry_after_s": _SECONDS0,
    "timeout_s": _SECONDS0, "bloat": {"type": "integer", "minimum": 2}}}
_DRIFT_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {
    "profile": {"enum": list(PROFILES)}, "rate": _RATE, "mix": _kinds_schema(DRIFT_KINDS),
    "keep_last": {"type": "integer", "minimum": 1}, "distractors": _TEXTS, "stale_facts": _TEXTS}}
_HTTP_FAULTS_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {
    "hosts": {"anyOf": [{"type": "string"}, _STRINGS]}, "rate": _RATE, "mix": _kinds_schema(HTTP_FAULT_KINDS),
    "retry_after_s": _SECONDS0, "timeout_s": _SECONDS0}}
FAULTS_KEYS.update(_table(
    Key("model", _boundary_reader(ModelFaults), {"anyOf": [{"enum": list(PROFILES)}, _MODEL_FAULTS_SCHEMA, _NULL]},
        "model-API faults and perturbed replies of the fake LLM: a profile name or {rate, mix, output_rate, "
        "output_mix, retry_after_s, timeout_s, bloat} (default: the profile's)"),
    Key("drift", _boundary_reader(Drift), {"anyOf": [{"enum": list(PROFILES)}, _DRIFT_SCHEMA, _NULL]},
        "context drift applied to the fake LLM's prompts: a profile name or {rate, mix, keep_last, distractors, "
        "stale_facts}"),
    Key("http", _boundary_reader(HttpFaults), {"anyOf": [_HTTP_FAULTS_SCHEMA, _NULL]},
        "transport faults for the HTTP hosts tools call: {hosts, rate, mix, retry_after_s, timeout_s}"),
))
SCENARIO_KEYS["llm"] = Key(
    "llm", _optional(_read_llm), {"anyOf": [_REF, {
        "type": "object", "additionalProperties": False, "required": ["policy"], "properties": {
            "policy": _REF, "model": {"type": "string", "minLength": 1}, "latency_s": _SECONDS0}}, _NULL]},
    "the fake model served to the agent as env.llm: a policy reference, or {policy, model, latency_s}")

# --- escalation layer (harness/escalation.py): the top-level ``escalation:`` section (``Escalation`` fields) ---


def _trigger(reader: Reader) -> Reader:
    """An escalation trigger's value: null is refused (leaving the key out is how a trigger is off)."""

    def read(doc: _Doc, node: Node, label: str) -> Any:
        if isinstance(node, yaml.ScalarNode) and doc.scalar(node) is None:
            doc.fail(node, f"{label}=null: leave the key out to switch this trigger off")
        return reader(doc, node, label)

    return read


_FRACTION = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}

#: ``escalation:`` keys: the triggers on which the harness hands the task to a human for the agent.
ESCALATION_KEYS: dict[str, Key] = _table(
    Key("after_consecutive_failures", _trigger(_whole), {"type": "integer", "minimum": 1},
        "escalate after this many failed tool calls in a row"),
    Key("max_steps", _trigger(_whole), {"type": "integer", "minimum": 1},
        "escalate instead of a step (tool or model call) past this many"),
    Key("budget_fraction", _trigger(_plain), _FRACTION, "escalate once this share of a budget is spent, e.g. 0.9"),
    Key("min_confidence", _trigger(_plain), _FRACTION,
        "escalate when the agent reports (env.report_confidence) a confidence under this"),
)


def _read_escalation(doc: _Doc, node: Node, label: str) -> Escalation | None:
    if isinstance(node, yaml.ScalarNode) and doc.scalar(node) is None:
        return None
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, f"{label}={_found(doc, node)} must be a mapping of {', '.join(ESCALATION_KEYS)}")
    with doc.within(f"{label}: "):
        kwargs = _read_section(doc, node, ESCALATION_KEYS, lambda kw: Escalation(**kw))
        return doc.check(node, lambda: Escalation(**kwargs))


SCENARIO_KEYS["escalation"] = Key(
    "escalation", _read_escalation,
    lambda: {"anyOf": [{**_section_schema(ESCALATION_KEYS), "minProperties": 1}, _NULL]},
    "escalation triggers: the harness hands over when the agent does not (at least one of "
    "after_consecutive_failures, max_steps, budget_fraction, min_confidence)")
_SECTIONS["escalation"] = ESCALATION_KEYS  # escalation layer


def _unknown_key(table: Mapping[str, Key], key: str, top_level: bool) -> str:
    homes = [section for section, keys in _SECTIONS.items() if key in keys] if top_level else []
    hint = f" ({key!r} belongs under '{homes[0]}:')" if homes else _did_you_mean(key, table)
    return f"unknown key {key!r}{hint}; valid keys: {', '.join(table)}"


def _place(kwargs: dict[str, Any], key: Key, value: Any) -> None:
    target = key.name if key.target is None else key.target
    if target == "":
        for name, v in value.items():
            if isinstance(v, dict) and isinstance(kwargs.get(name), dict):
                kwargs[name].update(v)
            else:
                kwargs[name] = v
    elif "." in target:
        field_name, _, sub = target.partition(".")
        kwargs.setdefault(field_name, {})[sub] = value
    else:
        kwargs[target] = value


def _read_section(doc: _Doc, node: yaml.MappingNode, table: Mapping[str, Key],
                  probe: Callable[[dict[str, Any]], Any], top_level: bool = False, where: str = ""
                  ) -> dict[str, Any]:
    """Keyword arguments from a mapping whose keys come from ``table``; each value validated by ``probe``
    alone, so a ConfigError points at the value that caused it."""
    entries = doc.items(node)
    for key, (key_node, _) in entries.items():
        if key not in table:
            doc.fail(key_node, where + _unknown_key(table, key, top_level))
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


# --- loading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioEntry:
    """A scenario read from a file, with where it starts (1-based line and column)."""

    scenario: Scenario = field(repr=False)
    path: str
    line: int
    column: int

    @property
    def name(self) -> str:
        return self.scenario.name


def _yaml_error(exc: yaml.YAMLError, path: str, text: str) -> ScenarioFileError:
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        return ScenarioFileError(f"YAML syntax error: {exc.reason}: {char!r} (U+{ord(char):04X}) is not allowed",
                                 path, before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}"
    context_mark = getattr(exc, "context_mark", None)
    if context:
        where = f" at line {context_mark.line + 1}" if context_mark is not None and mark is not None \
            and context_mark.line != mark.line else ""
        message += f" ({context}{where})"
    if "chomping or indentation indicators" in problem:
        message += "; a threshold starting with '>' must be quoted: completion_rate: \">= 0.90\""
    elif "'\\t'" in problem:
        message += "; indent with spaces, not tabs"
    elif "found another document" in problem:
        message += "; put several scenarios in one list ('- name: ...' items) instead of several documents"
    if mark is None:
        return ScenarioFileError(message, path)
    return ScenarioFileError(message, path, mark.line + 1, mark.column + 1)


def load_scenario_entries(text: str, path: str = "<string>") -> list[ScenarioEntry]:
    """The scenarios of a YAML text with their positions; ScenarioFileError (file:line:column) if invalid."""
    try:
        loader = ScenarioLoader(text)
    except yaml.YAMLError as exc:  # a character YAML does not allow
        raise _yaml_error(exc, path, text) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, path, text) from None
        doc = _Doc(loader, path)
        if root is None:
            raise ScenarioFileError("the file is empty: expected a scenario (a mapping with name:, agent:, ...) "
                                    "or a list of them", path, 1, 1)
        _check_tree(doc, root)
        if isinstance(root, yaml.SequenceNode):
            if not root.value:
                doc.fail(root, "the file holds an empty list: expected at least one scenario mapping")
            nodes = list(root.value)
            for i, node in enumerate(nodes, 1):
                if not isinstance(node, yaml.MappingNode):
                    doc.fail(node, f"scenario #{i}={_found(doc, node)} must be a mapping of keys "
                                   f"({', '.join(list(SCENARIO_KEYS)[:3])}, ...)")
        elif isinstance(root, yaml.MappingNode):
            nodes = [root]
        else:
            doc.fail(root, f"expected a scenario (a mapping with name:, agent:, ...) or a list of them, "
                           f"got {_found(doc, root)}")
        entries: list[ScenarioEntry] = []
        names: dict[str, Node] = {}
        for node in nodes:
            doc.tool_names = ()
            kwargs = _read_section(doc, node, SCENARIO_KEYS, _probe_scenario, top_level=True)
            name_node = doc.items(node)["name"][1]
            if kwargs["name"] in names:
                first = names[kwargs["name"]].start_mark
                doc.fail(name_node, f"duplicate scenario name {kwargs['name']!r} (first defined at line "
                                    f"{first.line + 1}); scenario names must be unique")
            names[kwargs["name"]] = name_node
            scenario = doc.check(node, lambda kwargs=kwargs: Scenario(**kwargs))
            entries.append(ScenarioEntry(scenario, path, node.start_mark.line + 1, node.start_mark.column + 1))
        return entries
    finally:
        loader.dispose()


def load_scenario_text(text: str, path: str = "<string>") -> list[Scenario]:
    """The scenarios described by a YAML text (one mapping or a list of them)."""
    return [e.scenario for e in load_scenario_entries(text, path)]


def read_scenario_file(path: str | os.PathLike[str], shown_as: str | None = None) -> str:
    """A scenario file's text; an unreadable or non-UTF-8 file is a ScenarioFileError (naming ``shown_as``)."""
    where = os.fspath(path) if shown_as is None else shown_as
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioFileError(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", where) from None
    except OSError as exc:
        raise ScenarioFileError(f"cannot read the file: {exc.strerror or exc}", where) from None


def load_scenarios(path: str | os.PathLike[str]) -> list[Scenario]:
    """The scenarios of a YAML scenario file; ScenarioFileError naming file:line:column if it is invalid."""
    return load_scenario_text(read_scenario_file(path), os.fspath(path))


# --- JSON Schema -----------------------------------------------------------------------------------------


def build_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of scenario files, generated from the key tables.

    It checks everything that does not need imports: keys, types, ranges, fault kinds, profiles,
    threshold expressions. Not covered: whether references import and are callable, tool names in
    ``per_tool``/``outage_tools``, duplicate names and duplicate YAML keys, and the range of a threshold
    written with an exponent (``'>= 9e-1'``), which the loader checks.
    """
    scenario = _section_schema(SCENARIO_KEYS)
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


if __name__ == "__main__":  # regenerate the shipped schema: python -m pytest_agentops.scenario_file
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
