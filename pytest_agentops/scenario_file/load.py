"""Loading scenario files: their text (UTF-8), their scenarios with positions (``ScenarioEntry``), or just the
``Scenario``s; every mistake a ``ScenarioFileError`` naming file:line:column."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ScenarioFileError
from ..scenario import Scenario
from .keys import read_section, scenario_keys
from .readers import probe_scenario
from .yamldoc import Node, ScenarioLoader, YamlDoc, check_tree, found, yaml_error


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


def load_scenario_entries(text: str, path: str = "<string>") -> list[ScenarioEntry]:
    """The scenarios of a YAML text with their positions; ScenarioFileError (file:line:column) if invalid."""
    try:
        loader = ScenarioLoader(text)
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


