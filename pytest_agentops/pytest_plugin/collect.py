"""pytest collection of YAML scenario files: with ``--agent-chaos``, one item per scenario.

Collected: ``.yaml``/``.yml`` files given on the command line, files matching the ini patterns
``agentops_scenario_files``, and the files under a ``scenarios/`` directory that look like scenario files (a
cheap look at their start, ``scenario_file.not_a_scenario_file``: a mapping with ``name`` and ``agent`` (or an
``agent: module:attr``, or ``name`` and keys only a scenario has), or a list of them); another YAML file there
is skipped with the reason, not collected as a broken scenario. Each item runs its campaign through the same
function as the ``agent_chaos`` fixture (``campaigns.run_scenario``), so seeds, trial counts, profiles, the
replay command, the terminal table and the JSON report behave the same for YAML and Python scenarios.
Imported by ``pytest_collect_file`` only when ``--agent-chaos`` is on, or a YAML file is named on the command
line without it (``scenario_file_without_chaos``).
"""

from __future__ import annotations

import fnmatch
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..errors import CampaignFailed, ConfigError, ScenarioFileError, UnusedSetting, hide_own_frames
from ..scenario_file import ScenarioEntry, load_scenario_entries, not_a_scenario_file, read_scenario_file
from .campaigns import run_scenario
from .ini_keys import PATTERNS, key_line
from .options import USAGE_ERROR_OUTPUT

__tracebackhide__ = hide_own_frames

#: scenario name -> "file:line:column" where it was first collected in this session
_names_key = pytest.StashKey[dict[str, str]]()
#: the ``agentops_scenario_files`` patterns that matched a YAML file collection looked at (before any deselection)
_matched_key = pytest.StashKey[set[str]]()


def scenario_file_rule(file_path: Path, parent: pytest.Collector) -> str | None:
    """Why a ``.yaml``/``.yml`` file is a scenario file: ``"given"`` on the command line, ``"pattern"`` (it
    matches an ``agentops_scenario_files`` pattern: with a '/', the path relative to the rootdir; without, the
    file name), ``"scenarios"`` (it is under a ``scenarios/`` directory: a scenario file if it looks like
    one); None: it is not one."""
    config = parent.config
    if parent.session.isinitpath(file_path):
        return "given"
    try:
        relative = file_path.relative_to(config.rootpath)
    except ValueError:
        relative = file_path
    matched = [pattern for pattern in config.getini("agentops_scenario_files")
               if fnmatch.fnmatch(relative.as_posix() if "/" in pattern else file_path.name, pattern)]
    if matched:
        config.stash.setdefault(_matched_key, set()).update(matched)  # (every one: ``warn_unmatched_patterns``)
        return "pattern"
    if "scenarios" in relative.parts[:-1]:
        return "scenarios"
    return None


def warn_unmatched_patterns(config: pytest.Config) -> str | None:
    """An ``agentops_scenario_files`` pattern that matched no YAML file collection looked at, in a run over the
    test paths from the rootdir (no path given: every pattern should find its files; ``-k`` or ``--deselect``
    do not change what was looked at), is an ``UnusedSetting`` warning, not a silent empty run. Where the run
    makes the warning an error, a usage error (an xdist worker hands it to the controller, which exits so when the
    worker finishes, and returns it: the worker then stops after its first test)."""
    matched = config.stash.get(_matched_key, set())
    given = [o for o in getattr(config.option, "override_ini", None) or () if o.partition("=")[0].strip() == PATTERNS]
    path = config.inipath
    line = key_line(path, PATTERNS) if path is not None and not given else 0
    where = f"-o {given[-1]}: " if given else f"{path}:{line}: " if line else f"{path}: " if path else ""
    for pattern in config.getini(PATTERNS):
        if pattern in matched:
            continue
        against = "the path relative to the rootdir" if "/" in pattern else "the file name"
        warning = UnusedSetting(f"{where}{PATTERNS}: the pattern {pattern!r} matched no .yaml/.yml file collected "
                                f"in this run (it is matched against {against}, under the rootdir "
                                f"{config.rootpath})")
        try:
            if line:
                warnings.warn_explicit(warning, UnusedSetting, str(path), line)  # (shown at the ini file's line)
            else:
                warnings.warn(warning, stacklevel=1)
        except UnusedSetting:  # ``-W error``: a usage error, not pytest's INTERNALERROR
            if hasattr(config, "workeroutput"):
                error = config.workeroutput[USAGE_ERROR_OUTPUT] = f"ERROR: {warning}"
                return error
            raise pytest.UsageError(str(warning)) from None
    return None


def is_scenario_file(file_path: Path, parent: pytest.Collector) -> bool:
    """Whether a ``.yaml``/``.yml`` file is collected as a scenario file (see ``scenario_file_rule``)."""
    return scenario_file_rule(file_path, parent) is not None


def collect_scenario_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    """The collector of a scenario file, or None for a YAML file that is not one. A file under
    ``scenarios/`` that does not look like a scenario file is collected as a skip saying why."""
    rule = scenario_file_rule(file_path, parent)
    if rule is None:
        return None
    collector = ScenarioFile.from_parent(parent, path=file_path)
    if rule == "scenarios":
        why = not_a_scenario_file(file_path)
        if why is not None:
            collector.not_a_scenario = why
    return collector


def scenario_file_without_chaos(file_path: Path, parent: pytest.Collector) -> NotRunWithoutChaos | None:
    """A YAML file named on the command line without ``--agent-chaos``: if it is (or may be) a scenario file, a
    collector whose collection error says how to run it; None for another YAML file (another plugin's)."""
    if not_a_scenario_file(file_path) is not None:
        return None
    return NotRunWithoutChaos.from_parent(parent, path=file_path)


class NotRunWithoutChaos(pytest.File):
    """A scenario file named on the command line without ``--agent-chaos``: a collection error saying so."""

    def collect(self) -> Iterator[pytest.Item]:
        shown = _shown(self.path, self.config)
        raise self.CollectError(f"{shown}: a scenario file runs only with --agent-chaos (pytest --agent-chaos "
                                f"{shown}); without it, pytest collects no test from it")


def skip_reason(why: str) -> str:
    return f"not a scenario file ({why}); a scenario file holds a mapping with name: and agent:, or a list of them"


def _redacted(text: str) -> str:
    """An error's text with the environment's secrets (read now: no campaign may have run yet) redacted."""
    from ..harness.secrets import redact_text, refresh

    refresh()
    return redact_text(text)


def _shown(path: Path, config: pytest.Config) -> str:
    """The path as errors show it: relative to where pytest was started (clickable in a terminal)."""
    try:
        relative = os.path.relpath(path, config.invocation_params.dir)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative


class ScenarioFile(pytest.File):
    """A YAML scenario file; an invalid one is a clean collection error ``file:line:column: message``."""

    not_a_scenario: str | None = None  # why a YAML file under scenarios/ is not a scenario file: skipped

    def collect(self) -> Iterator[ScenarioItem]:
        shown = _shown(self.path, self.config)
        if self.not_a_scenario is not None:  # (the plugin's pytest_make_collect_report reports it as a skip)
            pytest.skip(skip_reason(self.not_a_scenario))
        try:
            entries = load_scenario_entries(read_scenario_file(self.path, shown), shown)
        except (ScenarioFileError, Warning) as exc:  # (a deprecation the run's filters make an error: ``-W error``)
            raise self.CollectError(_redacted(str(exc))) from None  # (a key pasted where its variable's name goes)
        seen = self.config.stash.setdefault(_names_key, {})
        for entry in entries:
            where = f"{shown}:{entry.line}:{entry.column}"
            first = seen.setdefault(entry.name, where)
            if first != where:
                raise self.CollectError(_redacted(f"{where}: duplicate scenario name {entry.name!r} (also defined at "
                                                  f"{first}); scenario names must be unique across scenario files"))
        for entry in entries:
            yield ScenarioItem.from_parent(self, name=entry.name, entry=entry)


class ScenarioItem(pytest.Item):
    """One scenario of a file: runs its campaign and checks its expectations (strict xfail if ``xfail:``)."""

    def __init__(self, *, entry: ScenarioEntry, **kwargs: Any):
        super().__init__(**kwargs)
        self.entry = entry
        self.scenario = entry.scenario
        if self.scenario.xfail:  # (expected: the campaign fails; a bad setting or a harness error is not absorbed)
            self.add_marker(pytest.mark.xfail(reason=self.scenario.xfail, strict=True, raises=CampaignFailed))

    def runtest(self) -> None:
        from ..errors import CAMPAIGN_AT

        token = CAMPAIGN_AT.set((str(self.entry.path), self.entry.line))  # (its warnings shown at the YAML line)
        try:
            result = run_scenario(self.config, self, self.scenario)
        finally:
            CAMPAIGN_AT.reset(token)
        if result.skipped is not None:
            pytest.skip(result.skipped)
        result.check()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """A failed campaign shows its verdicts, worst trials and replay commands, not a traceback."""
        if isinstance(excinfo.value, CampaignFailed):
            return str(excinfo.value)
        error = excinfo.value
        if isinstance(error, ConfigError):  # (found at run time: shown at the key it names, state='...')
            key = re.match(r"(?:Scenario: )?([a-z_]+)", str(error))
            shown, (line, column) = str(error), self.entry.where(key.group(1) if key else "")
        elif isinstance(error, Warning):  # (one the run's filters turn into an error: UnusedSetting)
            shown, line, column = f"{type(error).__name__}: {error}", self.entry.line, self.entry.column
        else:
            return super().repr_failure(excinfo)
        return _redacted(f"{self.entry.path}:{line}:{column}: scenario {self.name!r}: {shown}")

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.entry.line - 1, f"scenario {self.name!r}"
