"""Loading scenario files: their text (UTF-8), their scenarios with positions (``ScenarioEntry``), or just the
``Scenario``s; every mistake a ``ScenarioFileError`` naming file:line:column."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from ..errors import ScenarioFileError, hide_own_frames
from ..scenario import Scenario
from .keys import read_section, scenario_keys
from .readers import probe_scenario
from .yamldoc import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    Node,
    ScenarioLoader,
    YamlDoc,
    check_tree,
    found,
    too_deep,
    too_large,
    yaml_error,
)

__tracebackhide__ = hide_own_frames


@dataclass(frozen=True, slots=True)
class ScenarioEntry:
    """A scenario read from a file, with where it starts (1-based line and column)."""

    scenario: Scenario = field(repr=False)
    path: str
    line: int
    column: int
    keys: tuple[tuple[str, int, int], ...] = field(default=(), repr=False)  # (key, line, column) of its top keys

    @property
    def name(self) -> str:
        return self.scenario.name

    def where(self, key: str) -> tuple[int, int]:
        """Line and column of the scenario's top-level ``key`` (an error found at run time is shown there), else
        of the scenario itself."""
        return next(((line, column) for name, line, column in self.keys if name == key), (self.line, self.column))


def load_scenario_entries(text: str, path: str = "<string>") -> list[ScenarioEntry]:
    """The scenarios of a YAML text with their positions; ScenarioFileError (file:line:column) if invalid.

    A text of more than ``MAX_FILE_BYTES`` (1 MB in UTF-8) is refused before it is parsed."""
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise ScenarioFileError(too_large(f"{len(text.encode('utf-8', 'surrogatepass')):,} bytes"), path)
    try:
        loader = ScenarioLoader(text, path)
    except yaml.YAMLError as exc:  # a character YAML does not allow
        raise yaml_error(exc, path, text) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise yaml_error(exc, path, text) from None
        doc = YamlDoc(loader, path)
        if root is None:
            raise ScenarioFileError("the file is empty: expected a scenario (a mapping with name:, agent:, ...) "
                                    "or a list of them", path, 1, 1)
        check_tree(doc, root)
        if isinstance(root, yaml.SequenceNode):
            if not root.value:
                doc.fail(root, "the file holds an empty list: expected at least one scenario mapping")
            nodes = list(root.value)
            for i, node in enumerate(nodes, 1):
                if not isinstance(node, yaml.MappingNode):
                    doc.fail(node, f"scenario #{i}={found(doc, node)} must be a mapping of keys "
                                   f"({', '.join(list(scenario_keys())[:3])}, ...)")
        elif isinstance(root, yaml.MappingNode):
            nodes = [root]
        else:
            doc.fail(root, f"expected a scenario (a mapping with name:, agent:, ...) or a list of them, "
                           f"got {found(doc, root)}")
        entries: list[ScenarioEntry] = []
        names: dict[str, Node] = {}
        for node in nodes:
            doc.tool_names, doc.tool_specs, doc.rule_names = (), {}, ()
            kwargs = read_section(doc, node, scenario_keys(), probe_scenario, top_level=True)
            name_node = doc.items(node)["name"][1]
            if kwargs["name"] in names:
                first = names[kwargs["name"]].start_mark
                # (a name merged in from an anchor, ``<<: *base``, is shown at the item that repeats it)
                doc.fail(name_node if _inside(name_node, node) else node, f"duplicate scenario name "
                         f"{kwargs['name']!r} (first defined at line {first.line + 1}); scenario names must be unique")
            names[kwargs["name"]] = name_node
            scenario = doc.check(node, lambda kwargs=kwargs: Scenario(**kwargs))
            keys = tuple((key, key_node.start_mark.line + 1, key_node.start_mark.column + 1)  # (not one merged in
                         for key, (key_node, _) in doc.items(node).items()  # from an anchor: another item's line)
                         if _inside(key_node, node))
            entries.append(ScenarioEntry(scenario, path, node.start_mark.line + 1, node.start_mark.column + 1,
                                         keys))
        return entries
    finally:
        loader.dispose()


def _inside(node: Node, item: Node) -> bool:
    """Whether ``node`` is written inside ``item`` (not merged in from an anchor elsewhere, ``<<: *base``)."""
    return item.start_mark.index <= node.start_mark.index < item.end_mark.index


def load_scenario_text(text: str, path: str = "<string>") -> list[Scenario]:
    """The scenarios described by a YAML text (one mapping or a list of them)."""
    return [e.scenario for e in load_scenario_entries(text, path)]


def read_scenario_file(path: str | os.PathLike[str], shown_as: str | None = None) -> str:
    """A scenario file's text; an unreadable, non-UTF-8 or too large file (over ``MAX_FILE_BYTES``: 1 MB) is a
    ScenarioFileError (naming ``shown_as``). Reads no more than the limit, whatever the file is."""
    where = os.fspath(path) if shown_as is None else shown_as
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                size = os.fstat(fh.fileno()).st_size
                raise ScenarioFileError(too_large(f"{size:,} bytes" if size > MAX_FILE_BYTES else
                                                  "larger than that"), where)
    except OSError as exc:
        raise ScenarioFileError(f"cannot read the file: {exc.strerror or exc}", where) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]  # (the line and column, in characters, of the first byte that is not UTF-8)
        start = before.rfind(b"\n") + 1
        line, column = before.count(b"\n") + 1, len(before[start:].decode("utf-8")) + 1
        raise ScenarioFileError(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", where, line,
                                column) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as Path.read_text reads it


#: How much of a file ``not_a_scenario_file`` looks at (which bounds its work: events of 64 KiB of YAML).
SNIFF_BYTES = 64 * 1024


def not_a_scenario_file(path: str | os.PathLike[str]) -> str | None:
    """Why a YAML file is not a scenario file, or None when it is one (or may be: a broken one is collected
    and reported). A cheap, safe look at the start of the file (its first 64 KiB, YAML events only, nothing
    built): a scenario file's first document is a mapping with ``name`` and ``agent``, or with an ``agent`` naming
    ``module:attr`` (its ``name`` misspelt), or with ``name`` and two keys only a scenario has (``tools``,
    ``check``, ...: its ``agent`` misspelt), or a list whose first item is one.
    A file that cannot be read or parsed is left to the loader, which says why. A longer file the first 64 KiB
    do not show to be one (a long comment first) is looked at whole, up to the 1 MB limit."""
    why, cut = _look(path, SNIFF_BYTES)
    return _look(path, MAX_FILE_BYTES)[0] if why is not None and cut else why


def _look(path: str | os.PathLike[str], limit: int) -> tuple[str | None, bool]:
    """``not_a_scenario_file``'s answer from the first ``limit`` bytes, and whether the file is longer."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return None, False
    cut = len(data) > limit
    return _sniff_bytes(path, data[:limit], cut), cut


def _sniff_bytes(path: str | os.PathLike[str], data: bytes, cut: bool) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not cut or exc.start < len(data) - 3:
            return None  # not UTF-8: the loader says so
        text = data[:exc.start].decode("utf-8")
    loader = None
    try:
        loader = ScenarioLoader(text, os.fspath(path))  # (raises at once for a character YAML does not allow)
        return _sniff(loader)
    except (yaml.YAMLError, ScenarioFileError):
        # broken YAML is a broken scenario file, reported by the loader; past the first 64 KiB the cut may
        # be what broke it: a file whose start does not show a scenario is not one
        return f"no mapping with 'name' and 'agent' in its first {len(data) // 1024:,} KiB" if cut else None
    finally:
        if loader is not None:
            loader.dispose()


#: Keys only a scenario has: a mapping with ``name`` and two of them is a scenario file whose ``agent`` key is
#: missing or misspelt (reported by the loader, not skipped as another file: an ``agnt:`` typo must not
#: silently drop the scenario).
_SCENARIO_ONLY = frozenset({"tools", "world", "check", "expect", "faults", "approver", "enforce", "scopes",
                            "escalation", "trajectory", "isolation", "llm", "live", "early_stop", "keep_traces",
                            "virtual_timeout_s", "max_campaign_tokens", "max_campaign_usd", "memory_limit_mb",
                            "shrink_runs", "allow_hosts", "xfail"})


def _sniff(loader: ScenarioLoader) -> str | None:
    keys: set[str] = set()  # the first mapping's keys seen so far
    try:
        return _sniff_keys(loader, keys)
    except ScenarioFileError as exc:
        if exc.bare_message == too_deep() and not keys & {"name", "agent"}:  # (data nested deep, first)
            return f"it nests more than {MAX_DEPTH} levels deep before any 'name' or 'agent' key"
        raise


def _sniff_keys(loader: ScenarioLoader, keys: set[str]) -> str | None:
    event = loader.get_event

    def skip(first: yaml.Event) -> None:  # the rest of a node that starts with ``first``
        depth = 1 if isinstance(first, yaml.CollectionStartEvent) else 0
        while depth:
            ev = event()
            if isinstance(ev, yaml.CollectionStartEvent):
                depth += 1
            elif isinstance(ev, yaml.CollectionEndEvent):
                depth -= 1

    event()  # stream start
    ev = event()
    if isinstance(ev, yaml.StreamEndEvent):
        return "it holds no YAML document"
    ev = event()  # the first document's root
    where = "its top level"
    if isinstance(ev, yaml.SequenceStartEvent):
        ev = event()
        where = "the first item of its top-level list"
        if isinstance(ev, yaml.SequenceEndEvent):
            return "its top level is an empty list"
    if not isinstance(ev, yaml.MappingStartEvent):
        return f"{where} is not a mapping"
    while True:
        ev = event()
        if isinstance(ev, yaml.MappingEndEvent):
            break
        key = ev.value if isinstance(ev, yaml.ScalarEvent) else None
        if key is None:
            skip(ev)
        else:
            keys.add(key)
        if ("<<" in keys and "name" in keys) or ("name" in keys and len(keys & _SCENARIO_ONLY) >= 2):
            return None  # (a merge key may bring agent; name and keys only a scenario has: agent misspelt)
        value = event()
        if key == "agent" and isinstance(value, yaml.ScalarEvent) and ":" in value.value:
            return None  # (``module:attr``: a scenario's agent; a misspelt or missing name is the loader's)
        if key == "agent" and "name" in keys:
            return None
        skip(value)
    if "agent" in keys and "name" in keys:
        return None
    missing = " and ".join(repr(k) for k in ("name", "agent") if k not in keys)
    return f"{where} is a mapping without {missing}"


def load_scenarios(path: str | os.PathLike[str]) -> list[Scenario]:
    """The scenarios of a YAML scenario file; ScenarioFileError naming file:line:column if it is invalid."""
    return load_scenario_text(read_scenario_file(path), os.fspath(path))


