"""A misspelled setting of this plugin in the ini file (``agent_chaos_trails = 500``) is a usage error naming the
file, the line, the key and the closest setting (given with ``-o``: naming the option): pytest only warns about an
unknown key, in a summary CI logs scroll past, and the run goes on with the setting ignored.

The keys of pytest's own section are read as pytest reads them: ``[pytest]`` (``pytest.ini``, ``tox.ini``) and
``[tool:pytest]`` (``setup.cfg``) with ``iniconfig``; ``[tool.pytest.ini_options]`` and ``[tool.pytest]``
(``pyproject.toml``) and ``[pytest]`` (``pytest.toml``) with ``tomllib`` (both already loaded by pytest for the
same file), so a value's lines (a marker named ``agentops_live: ...``) are never taken for keys. Only keys
beginning as the plugin's do (``agent_chaos``, ``agentops``, or with hyphens as on the command line:
``agent-chaos-profile``) are looked at; any other unknown key stays pytest's to warn about. A TOML value of
``agentops_scenario_files`` that is not text (``[5]``: a traceback at collection) is a usage error too."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from .._validation import did_you_mean
from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

_OURS = re.compile(r"(?:agent[-_]?chaos|agentops)", re.IGNORECASE)  # (hyphens too, as on the command line)
#: the ini key of the scenario files' patterns, whose TOML value must be text
PATTERNS = "agentops_scenario_files"
_HEADER = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


def _sections(path: Path) -> tuple[str, ...]:
    """The sections of ``path`` pytest reads its settings from (as pytest decides, by the file's name and then
    its suffix: any ``.cfg`` given with ``-c`` is read as ``setup.cfg`` is)."""
    name, suffix = path.name, path.suffix
    if suffix == ".cfg":
        return ("tool:pytest",)
    if name in ("pytest.toml", ".pytest.toml"):
        return ("pytest",)
    if name == "pyproject.toml":
        return ("tool.pytest", "tool.pytest.ini_options")
    if suffix == ".toml":  # (another name, given with -c)
        return ("tool.pytest", "tool.pytest.ini_options", "pytest")
    return ("pytest",)


def _ini_keys(path: Path) -> list[tuple[int, str]]:
    """(line, key) of every key in the file's pytest section (an ini file)."""
    import iniconfig

    try:
        config = iniconfig.IniConfig(str(path))
    except (OSError, iniconfig.ParseError):  # (pytest read it a moment ago, and says what is wrong with it)
        return []
    found = []
    for name in _sections(path):
        if name in config:
            section = config[name]
            found.extend((section.lineof(key) or 0, key) for key in section)
    return found


def _toml_keys(path: Path) -> list[tuple[int, str]]:
    """(line, key) of every key of pytest's tables (``pyproject.toml``, ``pytest.toml``); the line is where the
    key is written inside its table (0 when it is not written as ``key = ...`` there)."""
    return [(number, key) for number, key, _ in _toml_entries(path)]


def _toml_entries(path: Path) -> list[tuple[int, str, Any]]:
    """(line, key, value) of every key of pytest's tables in a TOML file (``_toml_keys``)."""
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    found = []
    for name in _sections(path):
        table: Any = data
        for part in name.split("."):
            table = table.get(part, {}) if isinstance(table, dict) else {}
        if not isinstance(table, dict):
            continue
        for key, value in table.items():
            found.append((_line_in_table(text, name, key), key, value))
    return found


def _line_in_table(text: str, table: str, key: str) -> int:
    """The line where ``key = ...`` is written under the header ``[table]`` (0: not found so)."""
    written = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            current = header.group(1).replace('"', "").replace("'", "").replace(" ", "")
        elif current == table and written.match(line):
            return number
    return 0


def key_line(path: Path, key: str) -> int:
    """The line of ``path`` where ``key`` of pytest's section is written (0: not written there)."""
    keys = _toml_keys(path) if path.suffix == ".toml" else _ini_keys(path)
    return next((number for number, name in keys if name == key), 0)


def unknown_keys(path: Path, known: Iterable[str]) -> list[tuple[int, str]]:
    """(line number, key) of each key in ``path``'s pytest section that looks like this plugin's and is not in
    ``known``."""
    names = set(known)
    keys = _toml_keys(path) if path.suffix == ".toml" else _ini_keys(path)
    return [(number, key) for number, key in keys if _OURS.match(key) and key not in names]


def check_ini_keys(config: pytest.Config, known: Iterable[str]) -> None:
    """Raise ``pytest.UsageError`` for the first misspelled key of this plugin given with ``-o`` or in the ini file,
    if any."""
    known = sorted(known)
    for given in getattr(config.option, "override_ini", None) or ():  # (``-o key=value``: pytest only warns too)
        key = given.partition("=")[0].strip()
        if _OURS.match(key) and key not in known:
            raise pytest.UsageError(f"-o {given}: {key!r} is not a pytest-agentops setting"
                                    f"{did_you_mean(key.replace('-', '_'), known)}; its settings are "
                                    f"{', '.join(known)}")
    path = config.inipath
    if path is None:
        return
    for number, key in unknown_keys(path, known):
        where = f"{path}:{number}" if number else str(path)
        raise pytest.UsageError(f"{where}: {key!r} is not a pytest-agentops setting"
                                f"{did_you_mean(key.replace('-', '_'), known)}; its settings are {', '.join(known)}")
    if path.suffix == ".toml":  # (an ini file's values are text; TOML's may be anything)
        for number, key, value in _toml_entries(path):
            if key == PATTERNS and not (isinstance(value, str) or (
                    isinstance(value, list) and all(isinstance(v, str) for v in value))):
                where = f"{path}:{number}" if number else str(path)
                raise pytest.UsageError(f"{where}: {PATTERNS} = {value!r}: expected glob patterns of scenario "
                                        'files, as a list of strings (["chaos/*.yml"]) or one string')
