"""A misspelled setting of this plugin in the ini file (``agent_chaos_trails = 500``) is a usage error naming the
file, the line, the key and the closest setting: pytest only warns about an unknown key, in a summary CI logs
scroll past, and the run goes on with the setting ignored.

Reads the file's lines (no ini or TOML parser: this runs in every pytest session of the environment) within
pytest's own sections: ``[pytest]`` (``pytest.ini``, ``tox.ini``), ``[tool:pytest]`` (``setup.cfg``) and
``[tool.pytest.ini_options]`` / ``[tool.pytest]`` (``pyproject.toml``). Only keys beginning as the plugin's do
(``agent_chaos``, ``agentops``) are looked at; any other unknown key stays pytest's to warn about."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from .._validation import did_you_mean
from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

_SECTIONS = ("[pytest]", "[tool:pytest]", "[tool.pytest.ini_options]", "[tool.pytest]")
_KEY = re.compile(r"\s*[\"']?((?:agent_?chaos|agentops)[\w.-]*)[\"']?\s*[=:]", re.IGNORECASE)
_HEADER = re.compile(r"\s*\[[^\]]*\]\]?\s*(?:[#;].*)?$")


def unknown_keys(path: Path, known: Iterable[str]) -> list[tuple[int, str]]:
    """(line number, key) of each key in ``path``'s pytest sections that looks like this plugin's and is not in
    ``known``."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # (pytest read it a moment ago; gone now: nothing to say about it)
        return []
    names = set(known)
    found = []
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if _HEADER.match(line):
            inside = line.split("#")[0].split(";")[0].strip().replace(" ", "") in _SECTIONS
        elif inside and (match := _KEY.match(line)) and match.group(1) not in names:
            found.append((number, match.group(1)))
    return found


def check_ini_keys(config: pytest.Config, known: Iterable[str]) -> None:
    """Raise ``pytest.UsageError`` for the first misspelled key of this plugin in the ini file, if any."""
    path = config.inipath
    if path is None:
        return
    known = sorted(known)
    for number, key in unknown_keys(path, known):
        raise pytest.UsageError(f"{path}:{number}: {key!r} is not a pytest-agentops setting"
                                f"{did_you_mean(key, known)}; its settings are {', '.join(known)}")
