"""A YAML document with positions: the node tree of a scenario file (composed, never ``yaml.load``-ed), so
that every key and value keeps its line and column and each mistake is reported where it was written.
Only plain data is allowed: tags that would build Python objects and recursive aliases are refused."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import yaml

from ..errors import ConfigError, ScenarioFileError

_STD = "tag:yaml.org,2002:"
_MERGE = _STD + "merge"
_SPECIAL_PLAIN = frozenset((_MERGE, _STD + "value"))
_ALLOWED_TAGS = frozenset(_STD + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp"))
_PERCENT = re.compile(r"^\s*\d+(?:\.\d+)?\s*%\s*$")

Node = yaml.Node


class ScenarioLoader(yaml.SafeLoader):
    """The YAML loader of scenario files: a ``SafeLoader`` used only to compose a node tree (every node
    keeps its ``start_mark``: line and column) and to build plain scalars; it never builds Python objects
    from tags."""


def short(value: Any, limit: int = 80) -> str:
    """A value as messages show it: its repr, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class YamlDoc:
    """One file being read: its loader (to build scalars), the errors' location, and per-scenario state."""

    def __init__(self, loader: ScenarioLoader, path: str):
        self.loader = loader
        self.path = path
        self._items: dict[int, dict[str, tuple[Node, Node]]] = {}
        self._prefix: list[str] = []
        self.tool_names: tuple[str, ...] = ()
        self.tool_specs: dict[str, Any] = {}  # name -> ToolSpec of the scenario being read
        self.rule_names: tuple[str, ...] = ()  # its trajectory rules (read before its expect)

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
        self.fail(node, f"a key must be a string, got {node_kind(node)}")


def node_kind(node: Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a value"


def found(doc: YamlDoc, node: Node) -> str:
    """What the user wrote, for messages: the value's (shortened) repr, ``None`` for null."""
    return short(doc.plain(node))


def check_tree(doc: YamlDoc, root: Node) -> None:
    """Refuse tags that would build Python objects (or anything beyond plain data) and recursive aliases."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    merge_keys = set()  # '<<' in key position: a merge key (applied by ``YamlDoc.items``)
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



def yaml_error(exc: yaml.YAMLError, path: str, text: str) -> ScenarioFileError:
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


