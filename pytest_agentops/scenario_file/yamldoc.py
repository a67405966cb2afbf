"""A YAML document with positions: the node tree of a scenario file (composed, never ``yaml.load``-ed), so
that every key and value keeps its line and column and each mistake is reported where it was written.
Only plain data is allowed: tags that would build Python objects and recursive aliases are refused.

Reading a file costs time and memory bounded by its size, whatever it holds: a file is at most
``MAX_FILE_BYTES``; values nest at most ``MAX_DEPTH`` deep (as written, and with aliases expanded); and the
document with every alias (``*name``) expanded holds at most ``MAX_EXPANDED`` nodes and characters, so a
"billion laughs" file (aliases of aliases, each expanding to many copies) is refused at the alias that
crosses the budget before anything is expanded. Expansion is memoised per node (``YamlDoc.plain``), and
messages show values through a bounded repr (``short``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import yaml

from ..errors import ConfigError, ScenarioFileError, hide_own_frames
from ..harness.secrets import redact_short

__tracebackhide__ = hide_own_frames

_STD = "tag:yaml.org,2002:"
_MERGE = _STD + "merge"
_SPECIAL_PLAIN = frozenset((_MERGE, _STD + "value"))
#: Numbers YAML 1.1 reads otherwise than they look: ``010`` is 8 (octal), ``1:30`` is 90 (base 60).
_SURPRISING_NUMBER = re.compile(r"[-+]?0[0-7_]+|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_ALLOWED_TAGS = frozenset(_STD + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp"))
_PERCENT = re.compile(r"^\s*\d+(?:\.\d+)?\s*%\s*$")

Node = yaml.Node

#: The largest scenario file read, in bytes (UTF-8): 1 MB.
MAX_FILE_BYTES = 1_000_000
#: How deep values may nest (mappings and lists inside each other), as written and with aliases expanded.
MAX_DEPTH = 100
#: The most nodes plus scalar characters a document may hold with every alias expanded: twice what a 1 MB
#: file can hold without aliases, so only aliases (a "billion laughs" file) can reach it.
MAX_EXPANDED = 2 * MAX_FILE_BYTES


class ScenarioLoader(yaml.SafeLoader):
    """The YAML loader of scenario files: a ``SafeLoader`` used only to compose a node tree (every node
    keeps its ``start_mark``: line and column) and to build plain scalars; it never builds Python objects
    from tags. Scanning and composing refuse nesting deeper than ``MAX_DEPTH`` (PyYAML's composer recurses per
    level, and its scanner's work per token grows with the depth of ``[``/``{`` nesting)."""

    def __init__(self, stream: str, path: str = "<string>"):
        super().__init__(stream)
        self.path = path
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ScenarioFileError(too_deep(), self.path, mark.line + 1, mark.column + 1)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            mark = self.get_mark()
            raise ScenarioFileError(too_deep(), self.path, mark.line + 1, mark.column + 1)
        super().fetch_flow_collection_start(TokenClass)


def too_deep() -> str:
    return (f"values nest more than {MAX_DEPTH} levels deep (mappings and lists inside each other, aliases "
            "expanded); a scenario file needs a handful")


def too_large(size: str) -> str:
    return (f"the file is {size}: scenario files are limited to 1 MB ({MAX_FILE_BYTES:,} bytes); split it into "
            "several files")


#: How far past a message's limit a value's text is built, so that it is redacted before it is cut
#: (``redact_short``: only a text many secrets long could still be cut inside one).
_REDACTED_AHEAD = 10_000


def short(value: Any, limit: int = 80) -> str:
    """A value as messages show it: its repr, shortened (built only as far as shown: a large value, or one
    that shares parts through aliases, costs no more than ``limit`` characters)."""
    parts: list[str] = []
    size = 0
    for part in _repr_parts(value, set(), 0):
        parts.append(part)
        size += len(part)
        if size > limit + _REDACTED_AHEAD:
            break
    text = "".join(parts)
    # (redacted before it is cut: a key pasted into the file, cut at the limit, no longer matched its value)
    return text if len(text) <= limit else redact_short(text, limit - 3)


def _repr_parts(value: Any, path: set[int], depth: int) -> Iterator[str]:
    """``repr(value)`` in pieces, lazily, for the plain data of a file (lists, dicts; the rest as ``repr``)."""
    cls = type(value)
    if (cls is not list and cls is not dict) or depth > MAX_DEPTH:
        yield repr(value)
        return
    if id(value) in path:  # a container that holds itself (a Python value named by a reference)
        yield "[...]" if cls is list else "{...}"
        return
    path.add(id(value))
    if cls is list:
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ", "
            yield from _repr_parts(item, path, depth + 1)
        yield "]"
    else:
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            if i:
                yield ", "
            yield from _repr_parts(key, path, depth + 1)
            yield ": "
            yield from _repr_parts(item, path, depth + 1)
        yield "}"
    path.discard(id(value))


class YamlDoc:
    """One file being read: its loader (to build scalars), the errors' location, and per-scenario state."""

    def __init__(self, loader: ScenarioLoader, path: str):
        self.loader = loader
        self.path = path
        self._items: dict[int, dict[str, tuple[Node, Node]]] = {}
        self._plain: dict[int, Any] = {}  # id(node) -> its plain value: an alias is expanded once
        self._prefix: list[str] = []
        self.tool_names: tuple[str, ...] = ()
        self.tool_specs: dict[str, Any] = {}  # name -> ToolSpec of the scenario being read
        self.rule_names: tuple[str, ...] = ()  # its trajectory rules (read before its expect)

    def fail(self, node: Node | yaml.Mark | None, message: str) -> NoReturn:
        mark = node if isinstance(node, yaml.Mark) else getattr(node, "start_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool" and node.style is None \
                and node.value.lower() in ("yes", "no", "on", "off"):  # (YAML 1.1's booleans: network: no)
            message += (f" (YAML reads an unquoted {node.value} as {str(node.value.lower() in ('yes', 'on')).lower()}"
                        f": quote it, '{node.value}', to give the word)")
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
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:  # e.g. a date such as 2024-13-45
            self.fail(node, f"cannot read the value {node.value!r}: {getattr(exc, 'problem', None) or exc}")
        if node.tag in (_STD + "int", _STD + "float") and _SURPRISING_NUMBER.fullmatch(str(node.value)):
            why = "a base-60 number, minutes:seconds" if ":" in str(node.value) else "an octal number: its leading 0"
            self.fail(node, f"{node.value} is read by YAML 1.1 as {value!r} ({why}): write the number in plain "
                            "decimal, or quote it to mean text")
        return value

    def plain(self, node: Node) -> Any:
        """The node as plain data (str, int, float, bool, None, date, list, dict with string keys).

        Memoised per node: a node reached through several aliases is expanded once and shared (as
        ``yaml.safe_load`` shares it); ``check_tree`` has bounded the document's expanded size and depth."""
        key = id(node)
        try:
            return self._plain[key]
        except KeyError:
            pass
        if isinstance(node, yaml.MappingNode):
            value: Any = {k: self.plain(v) for k, (_, v) in self.items(node).items()}
        elif isinstance(node, yaml.SequenceNode):
            value = [self.plain(v) for v in node.value]
        else:
            value = self.scalar(node)
        self._plain[key] = value
        return value

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
    """Refuse tags that would build Python objects (or anything beyond plain data), recursive aliases, and
    documents too big or too deep once their aliases are expanded (``MAX_EXPANDED``, ``MAX_DEPTH``).

    One walk over the node graph, each node visited once: its expanded size (itself, its scalar's
    characters, and its children's expanded sizes) and depth are worked out from its children's when it is
    left, so a node reached through many aliases costs nothing more."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    size: dict[int, int] = {}  # id(node) -> nodes and scalar characters once aliases are expanded
    depth: dict[int, int] = {}  # id(node) -> levels of nesting once aliases are expanded (a scalar: 1)
    merge_keys = set()  # '<<' in key position: a merge key (applied by ``YamlDoc.items``)
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            state[id(node)] = 2
            _measure(doc, node, size, depth)
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


def _measure(doc: YamlDoc, node: Node, size: dict[int, int], depth: dict[int, int]) -> None:
    """A node's expanded size and depth, from its children's (all measured already); refuse it past a limit."""
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        size[id(node)] = 1 + len(node.value)
        depth[id(node)] = 1
        return
    # (a merge key '<<' is skipped by the walk: it counts as one node)
    total = 1 + sum(size.get(id(c), 1) for c in children)
    levels = 1 + max((depth.get(id(c), 1) for c in children), default=0)
    if total > MAX_EXPANDED:
        doc.fail(node, f"aliases ('*name') expand this value to more than {MAX_EXPANDED:,} nodes and characters "
                       "(aliases of aliases multiply: a 'billion laughs' file?); a scenario file with every alias "
                       f"expanded is limited to {MAX_EXPANDED:,}")
    if levels > MAX_DEPTH:
        doc.fail(node, too_deep())
    size[id(node)] = total
    depth[id(node)] = levels


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


