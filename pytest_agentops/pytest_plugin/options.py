"""The plugin's options: the ``--agent-chaos-*`` command-line options with their ini twins, each parsed by one
small function that raises ``pytest.UsageError`` naming the valid values, resolved once per session into
``ChaosOptions``. Imports nothing of the engine: this runs in every pytest session of the environment."""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from typing import Any

import pytest

from .._validation import MAX_CONCURRENCY, MAX_SEED_DIGITS, MAX_TRIALS
from ..entropy import fresh_seed
from ..errors import hide_own_frames
from .commands import launcher

__tracebackhide__ = hide_own_frames

PROFILES = ("none", "low", "mid", "high")
ISOLATIONS = ("none", "process")  # settings.layers.ISOLATIONS (not imported: this module stays engine-free)
CACHE_SEED = "agentops/seed"
PROGRESS_MODES = ("auto", "on", "off")
#: seconds between progress lines when the terminal is not a TTY (CI logs)
PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    """The run-level settings, resolved once per session from the command line and the ini file.

    Seeds: ``seed`` (``--agent-chaos-seed``, else the ini's) is every campaign's seed, over the marker's and
    the scenario's; ``session_seed`` (``--agent-chaos-session-seed``, else a fresh one) is the seed of the
    campaigns that set none anywhere. The header prints the command that repeats the run with both.
    """

    enabled: bool
    seed: int | None  # command line, else ini: wins over marker and scenario
    session_seed: int  # used when no seed is given anywhere
    trials: int | None
    profile: str | None
    report: str | None
    replay: tuple[str | None, int] | None  # (scenario name or None, trial index)
    concurrency: int | None = None  # trials run at once (results are still consumed in launch order)
    session_seed_given: bool = False  # --agent-chaos-session-seed (or last) rather than a fresh one
    isolation: str | None = None  # where each trial's agent runs: none, or process (a child process per trial)
    html: str | None = None  # --agent-chaos-html: the self-contained HTML report's path
    otel: str | None = None  # --agent-chaos-otel: an OTLP/JSON file of the trials' spans
    show: tuple[str | None, int] | None = None  # --agent-chaos-show: a trial of the last report, not re-run
    max_usd: float | None = None  # every campaign's spend cap in US dollars
    max_tokens: int | None = None  # ... and in tokens
    record: str | None = None  # a directory: record live models' answers there (absolute)
    cassette: str | None = None  # a directory: replay the cassettes there instead of live models (absolute)
    progress: str = "auto"  # live progress while a campaign runs: auto, on or off (pytest_plugin/progress.py)
    progress_every_s: float = PROGRESS_EVERY_S  # seconds between progress lines when not on a TTY
    launcher: str = "pytest"  # how the run was started, as printed commands start: pytest, or python -m pytest
    replay_seed: int | None = None  # the trial seed a replay given as a label names (``NAME[trial-17 seed=...]``)


#: the ini twins of the options (and the scenario-file globs): name -> (help, ``addini`` keywords)
_INI: dict[str, tuple[str, dict[str, Any]]] = {
    "agent_chaos": ("run full chaos campaigns by default (like --agent-chaos)", {"type": "bool", "default": False}),
    "agent_chaos_seed": ("every campaign's seed, as --agent-chaos-seed (over markers' and scenarios')", {}),
    "agent_chaos_trials": ("default maximum trials per campaign", {}),
    "agent_chaos_profile": ("fault profile, as --agent-chaos-profile (its rates replace a scenario's)", {}),
    "agent_chaos_report": ("path of the JSON report", {}),
    "agent_chaos_replay": ("re-run only this trial (like --agent-chaos-replay)", {}),
    "agent_chaos_concurrency": ("default number of trials run at once per campaign", {}),
    "agent_chaos_isolation": ("where each trial's agent runs, as --agent-chaos-isolation", {}),
    "agent_chaos_html": ("path of the HTML report (like --agent-chaos-html)", {}),
    "agent_chaos_otel": ("path of the OTLP/JSON file of the trials' spans (like --agent-chaos-otel)", {}),
    "agent_chaos_max_usd": ("every campaign's spend cap in US dollars, as --agent-chaos-max-usd", {}),
    "agent_chaos_max_tokens": ("every campaign's spend cap in tokens, as --agent-chaos-max-tokens", {}),
    "agent_chaos_cassette": ("replay the cassettes in this directory, as --agent-chaos-cassette", {}),
    "agent_chaos_progress": ("live progress while a campaign runs: auto, on or off (like --agent-chaos-progress)",
                             {}),
    "agent_chaos_progress_every": ("seconds between progress lines when the output is not a terminal "
                                   "(like --agent-chaos-progress-every)", {}),
    "agentops_scenario_files": ("glob patterns of YAML scenario files collected with --agent-chaos "
                                "(besides .yaml/.yml files under scenarios/ and files given on the command line)",
                                {"type": "args"}),
}
#: (an xdist worker's ``workeroutput``) the usage error its check of the scenario file patterns made under
#: ``-W error`` (``collect.warn_unmatched_patterns``), for the controller to exit with
USAGE_ERROR_OUTPUT = "agentops_usage_error"
#: every ini key of the plugin (a key beginning like them that is not one is a usage error: ``ini_keys``)
INI_NAMES = frozenset(_INI)


def add_options(parser: pytest.Parser) -> None:
    """Register the option group and the ini twins."""
    group = parser.getgroup("agentops", "agent chaos campaigns (pytest-agentops)")
    group.addoption("--agent-chaos", action="store_true", default=None, dest="agent_chaos",
                    help="run full chaos campaigns (without it a chaos test runs one fault-free smoke trial).")
    group.addoption("--agent-chaos-seed", dest="agent_chaos_seed", metavar="SEED",
                    help="every campaign's seed (over markers' and scenarios' own): a whole number, or 'last' to "
                         "repeat the seeds of the previous run that printed them.")
    group.addoption("--agent-chaos-session-seed", dest="agent_chaos_session_seed", metavar="SEED",
                    help="the seed of campaigns whose test and scenario set none (default: a fresh one, printed).")
    group.addoption("--agent-chaos-trials", dest="agent_chaos_trials", metavar="N",
                    help="maximum trials per campaign (overrides scenarios and markers).")
    group.addoption("--agent-chaos-profile", dest="agent_chaos_profile", metavar="NAME",
                    help=f"fault profile: {', '.join(PROFILES)} (3%%/8%%/15%% of tool calls fail for low/mid/high).")
    group.addoption("--agent-chaos-report", dest="agent_chaos_report", metavar="PATH",
                    help="write the JSON report of every campaign to PATH.")
    group.addoption("--agent-chaos-replay", dest="agent_chaos_replay", metavar="TRIAL_ID",
                    help="re-run only one trial: 17, trial-17 or SCENARIO/trial-17.")
    group.addoption("--agent-chaos-concurrency", dest="agent_chaos_concurrency", metavar="N",
                    help="trials run at once per campaign: async agents as tasks on one loop, sync agents in "
                         "N threads (verdicts do not depend on it).")
    group.addoption("--agent-chaos-isolation", dest="agent_chaos_isolation", metavar="MODE",
                    help="where each trial's agent runs: none (this process) or process (a child process per trial "
                         "with a memory limit, its process group killed as a whole; over scenarios' own).")
    group.addoption("--agent-chaos-html", dest="agent_chaos_html", metavar="PATH",
                    help="write a self-contained HTML report of every campaign to PATH (charts, trials, traces).")
    group.addoption("--agent-chaos-otel", dest="agent_chaos_otel", metavar="PATH",
                    help="write the trials as OpenTelemetry spans (GenAI conventions) to PATH, an OTLP/JSON file "
                         "(needs the otel extra; OTEL_EXPORTER_OTLP_ENDPOINT sends them to a collector).")
    group.addoption("--agent-chaos-show", dest="agent_chaos_show", metavar="TRIAL_ID",
                    help="print one trial of the last JSON report as a timeline, without running anything: "
                         "17, trial-17 or SCENARIO/trial-17.")
    group.addoption("--agent-chaos-max-usd", dest="agent_chaos_max_usd", metavar="USD",
                    help="every campaign's spend cap in US dollars: it launches no trial that could cross it.")
    group.addoption("--agent-chaos-max-tokens", dest="agent_chaos_max_tokens", metavar="N",
                    help="every campaign's spend cap in tokens (input + output).")
    group.addoption("--agent-chaos-record", dest="agent_chaos_record", metavar="DIR",
                    help="record the answers of live models (Scenario(live=...)) as cassettes in DIR.")
    group.addoption("--agent-chaos-cassette", dest="agent_chaos_cassette", metavar="DIR",
                    help="replay the cassettes in DIR instead of calling live models (offline, no key, no cost).")
    group.addoption("--agent-chaos-progress", dest="agent_chaos_progress", metavar="MODE",
                    help="live progress while a campaign runs: auto (default: redrawn in place on a terminal, a "
                         "line every few seconds otherwise, none with -qq), on (also with -qq) or off.")
    group.addoption("--agent-chaos-progress-every", dest="agent_chaos_progress_every", metavar="SECONDS",
                    help=f"seconds between progress lines when the output is not a terminal (default "
                         f"{PROGRESS_EVERY_S:g}; campaigns that end sooner print none).")
    numbers = _numbers_in_toml()
    for name, (help_text, keywords) in _INI.items():
        parser.addini(name, help_text, **(numbers if name in _NUMERIC_INI else keywords))


#: the ini keys whose values are numbers (a seed may also be ``last``): in a ``[tool.pytest]`` table (pytest 9's
#: native TOML) written as TOML numbers or strings alike
_NUMERIC_INI = frozenset({"agent_chaos_seed", "agent_chaos_trials", "agent_chaos_concurrency", "agent_chaos_max_usd",
                          "agent_chaos_max_tokens", "agent_chaos_progress_every"})


def _numbers_in_toml() -> dict[str, Any]:
    """``addini`` keywords taking a string or a number (pytest >= 9.2: a union type; in INI files and ``-o`` the
    value stays a string); before 9.2, a plain string setting."""
    if tuple(int(part) for part in pytest.__version__.split(".")[:2] if part.isdigit()) < (9, 2):
        return {}
    return {"type": str | int | float, "default": ""}


def parse_seed(value: str, source: str, *, last: bool = False) -> int:
    """A seed setting: a whole number >= 0 (``last``: the setting also takes 'last', which the caller reads)."""
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text):
        raise pytest.UsageError(f"{source}={value!r} must be a whole number >= 0" + (" or 'last'" if last else (
            " (--agent-chaos-seed=last repeats the last run's session seed too)" if text == "last" else "")))
    if len(text) > MAX_SEED_DIGITS:
        raise pytest.UsageError(f"{source}= has {len(text):,} digits: a seed has at most {MAX_SEED_DIGITS}")
    return int(text)


def _seed_or_last(value: str, source: str) -> int | None:
    """``parse_seed``, with ``last`` read as None (the previous run's seeds: ``last_seeds``)."""
    return None if value.strip() == "last" else parse_seed(value, source, last=True)


def last_seeds(cache: Any, source: str) -> tuple[int | None, int]:
    """``last``: (seed, session seed) of the previous run that printed them (pytest's cache)."""
    if cache is None:
        raise pytest.UsageError(f"{source}=last reads the seeds from pytest's cache, which is off in this run "
                                "(-p no:cacheprovider); give a number instead")
    last = cache.get(CACHE_SEED, None)
    if isinstance(last, dict) and isinstance(last.get("session"), int):
        seed = last.get("seed")
        return (seed if isinstance(seed, int) else None), last["session"]
    raise pytest.UsageError(f"{source}=last: no run has printed its seeds yet (in this project's pytest cache); "
                            "give a number instead")


def parse_trials(value: str, source: str) -> int:
    """The most trials per campaign: a whole number in [1, 10,000,000]."""
    number = _whole(value)
    if number is None or number < 1:
        raise pytest.UsageError(f"{source}={value!r} must be a whole number >= 1")
    if number > MAX_TRIALS:
        raise pytest.UsageError(f"{source}={value!r} is too large: at most {MAX_TRIALS:,} trials per campaign")
    return number


def parse_concurrency(value: str, source: str) -> int:
    """How many trials run at once: a whole number in [1, 1,000]."""
    number = _whole(value)
    if number is None or number < 1:
        raise pytest.UsageError(f"{source}={value!r} must be a whole number of trials run at once >= 1, e.g. 50")
    if number > MAX_CONCURRENCY:
        raise pytest.UsageError(f"{source}={value!r} is too large: at most {MAX_CONCURRENCY:,} trials run at once "
                                "(a sync agent's trial runs in a thread of its own)")
    return number


def _whole(value: str) -> int | None:
    """The whole number written (digits only), capped at 10**15 so that no length of digits costs anything."""
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text):
        return None
    digits = text.lstrip("0") or "0"
    return 10**15 if len(digits) > 15 else int(digits)


def parse_usd(value: str, source: str) -> float:
    """A spend cap in US dollars: a number > 0."""
    try:
        usd = float(str(value).strip())
    except ValueError:
        usd = -1.0
    if not usd > 0 or usd == float("inf"):
        raise pytest.UsageError(f"{source}={value!r} must be a number of US dollars > 0, e.g. 5 or 0.50")
    return usd


def parse_tokens(value: str, source: str) -> int:
    """A spend cap in tokens: a whole number >= 1, digits grouped by ``_`` (as in Python) or by ``,`` in
    thousands (``2,000,000``; ``1,000,00`` is refused, not read as 100000)."""
    text = str(value).strip()
    if not (re.fullmatch(r"\d+(_\d+)*", text) or re.fullmatch(r"\d{1,3}(,\d{3})+", text)) \
            or int(text.replace("_", "").replace(",", "")) < 1:
        raise pytest.UsageError(f"{source}={value!r} must be a whole number of tokens >= 1, e.g. 2000000 or "
                                "2,000,000")
    return int(text.replace("_", "").replace(",", ""))


def parse_profile(value: str, source: str) -> str:
    text = str(value).strip()
    if text not in PROFILES:
        raise pytest.UsageError(f"{source}={value!r} is not a fault profile; valid profiles: {', '.join(PROFILES)}")
    return text


def parse_progress(value: str, source: str) -> str:
    text = str(value).strip().lower()
    if text not in PROGRESS_MODES:
        raise pytest.UsageError(f"{source}={value!r} must be one of {', '.join(PROGRESS_MODES)}")
    return text


def parse_seconds(value: str, source: str) -> float:
    """An interval in seconds: a number in [0.1, 3600] (below a tenth of a second lines would flood a log)."""
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 3600:
        raise pytest.UsageError(f"{source}={value!r} must be a number of seconds from 0.1 to 3600, e.g. 5")
    return seconds


def parse_isolation(value: str, source: str) -> str:
    text = str(value).strip()
    if text not in ISOLATIONS:
        raise pytest.UsageError(f"{source}={value!r} must be one of {', '.join(ISOLATIONS)}")
    return text


def parse_replay(value: str, source: str) -> tuple[str | None, int]:
    """``17``, ``trial-17``, ``refund/17``, ``refund/trial-17`` or ``refund[trial-17 ...]`` (a scenario name
    may itself hold ``/``, ``[`` or spaces: the trial is read from the end)."""
    text = str(value).strip()
    m = _REPLAY.fullmatch(text)
    if not m:
        raise pytest.UsageError(f"{source}={value!r} must be a trial id: 17, trial-17 or SCENARIO/trial-17")
    if len(m.group("index")) > MAX_INDEX_DIGITS:
        raise pytest.UsageError(f"{source}= names trial {m.group('index')[:20]}... ({len(m.group('index')):,} "
                                f"digits): a trial index has at most {MAX_INDEX_DIGITS}")
    return m.group("name"), int(m.group("index"))


#: The most digits of a trial index (``MAX_TRIALS`` has 8).
MAX_INDEX_DIGITS = 18


_REPLAY = re.compile(r"(?:(?P<name>.+)(?:/|\[))?(?:trial-)?(?P<index>\d+)(?:\s+seed=(?P<seed>\d+))?\]?", re.S)


def replay_label_seed(value: str | None) -> int | None:
    """The trial seed a replay given as a trial's label names (``refund[trial-17 seed=123]``), else None."""
    m = _REPLAY.fullmatch(str(value).strip()) if value is not None else None
    if m is None or m.group("seed") is None:
        return None
    return parse_seed(m.group("seed"), "the seed of --agent-chaos-replay")


def _option(config: pytest.Config, name: str) -> str | None:
    """A command-line value; an empty one (``--agent-chaos-replay=$TRIAL`` with ``TRIAL`` unset) is a usage error,
    not the option left out (a whole campaign would run instead of the replay asked for)."""
    value = config.getoption(name)
    if value is None:
        return None
    if str(value).strip() == "":
        option = "--" + name.replace("_", "-")
        raise pytest.UsageError(f"{option}={value!r} is empty: give it a value, or leave {option} out")
    return str(value)


def _ini(config: pytest.Config, name: str) -> str | None:
    """An ini value; an empty one (``agent_chaos_trials =``) counts as not set, as pytest's own ini keys do."""
    value = config.getini(name)
    if value is None or value == "" or isinstance(value, bool):  # (a TOML number 0 is a value: seed 0)
        return None
    return str(value).strip() or None


def resolve_options(config: pytest.Config) -> ChaosOptions:
    """Read every agent-chaos setting; a bad value is a UsageError naming the valid ones."""
    cache = getattr(config, "cache", None)
    raw = _option(config, "agent_chaos_seed") or _ini(config, "agent_chaos_seed")
    workerinput = getattr(config, "workerinput", None)
    if workerinput and "agentops_seeds" in workerinput:  # xdist: every worker uses the controller's seeds
        seed, session_seed = workerinput["agentops_seeds"]
        given = True
    elif raw is not None and raw.strip() == "last":
        _setting(config, "agent_chaos_seed", _seed_or_last)  # (a broken ini seed the option overrides is an error)
        source = source_of(config, "agent_chaos_seed")
        seed, session_seed = last_seeds(cache, source)
        given = True
    else:
        seed = _setting(config, "agent_chaos_seed", _seed_or_last)  # (an overridden ini ``last`` is fine)
        session = _option(config, "agent_chaos_session_seed")
        given = session is not None
        session_seed = parse_seed(session, "--agent-chaos-session-seed") if given else fresh_seed()
    replay = _setting(config, "agent_chaos_replay", parse_replay)
    try:  # (read even when the command line says: a broken ini value is an error either way, as every key's is)
        ini_enabled = config.getini("agent_chaos")
    except (ValueError, pytest.UsageError) as exc:  # ("invalid truth value 'maybe'": no key, no file)
        raise pytest.UsageError(f"{ini_source(config, 'agent_chaos')}: {exc}; expected true or false") from None
    enabled = config.getoption("agent_chaos")
    if enabled is None:
        enabled = ini_enabled
    outputs = _outputs(config)
    return ChaosOptions(
        launcher=workerinput["agentops_launcher"] if workerinput and "agentops_launcher" in workerinput
        else launcher(),
        enabled=bool(enabled) or replay is not None,
        seed=seed, session_seed=session_seed,
        trials=_setting(config, "agent_chaos_trials", parse_trials),
        concurrency=_setting(config, "agent_chaos_concurrency", parse_concurrency),
        profile=_setting(config, "agent_chaos_profile", parse_profile),
        report=outputs["report"],
        replay=replay, session_seed_given=given,
        replay_seed=replay_label_seed(_option(config, "agent_chaos_replay") or _ini(config, "agent_chaos_replay"))
        if replay is not None else None,
        isolation=_setting(config, "agent_chaos_isolation", parse_isolation),
        html=outputs["html"], otel=outputs["otel"],
        show=_show(config),
        max_usd=_setting(config, "agent_chaos_max_usd", parse_usd),
        max_tokens=_setting(config, "agent_chaos_max_tokens", parse_tokens),
        progress=_setting(config, "agent_chaos_progress", parse_progress) or "auto",
        progress_every_s=_setting(config, "agent_chaos_progress_every", parse_seconds) or PROGRESS_EVERY_S,
        **_cassettes(config),
    )


def _outputs(config: pytest.Config) -> dict[str, str | None]:
    """The JSON report, the HTML report and the OTel file: two of them at one path is a usage error (the one
    written last replaced the other without a word), as is one of them at pytest's ``--junitxml`` path."""
    found = {"report": _setting(config, "agent_chaos_report", lambda v, src: v),
             "html": _setting(config, "agent_chaos_html", lambda v, src: v),
             "otel": _setting(config, "agent_chaos_otel", parse_otel)}
    seen: dict[str, str] = {}
    for kind, path in found.items():
        if path is None:
            continue
        key = os.path.normcase(os.path.abspath(os.path.join(config.invocation_params.dir, path)))
        if key in seen:
            raise pytest.UsageError(f"--agent-chaos-{seen[key]} and --agent-chaos-{kind} (or their ini twins) name the "
                                    f"same file {path!r}: one would replace the other")
        seen[key] = kind
    junit = config.getoption("xmlpath", None)  # (pytest's --junitxml: the plugin's report written last replaced it)
    if junit:
        key = os.path.normcase(os.path.abspath(os.path.join(config.invocation_params.dir, junit)))
        if key in seen:
            raise pytest.UsageError(f"--junitxml and --agent-chaos-{seen[key]} (or its ini twin) name the same file "
                                    f"{junit!r}: one would replace the other")
    return found


def _cassettes(config: pytest.Config) -> dict[str, str | None]:
    """``--agent-chaos-record`` / ``--agent-chaos-cassette`` (or the ini's): absolute directories (relative ones
    are taken from where pytest was started, as ``--junitxml`` does); both at once is a usage error."""
    record = _option(config, "agent_chaos_record")
    cassette = _option(config, "agent_chaos_cassette") or (None if record else _ini(config, "agent_chaos_cassette"))
    if record and cassette:
        raise pytest.UsageError("--agent-chaos-record and --agent-chaos-cassette: record the live models' answers, "
                                "or replay them, not both")
    base = config.invocation_params.dir
    return {"record": str(base / record) if record else None, "cassette": str(base / cassette) if cassette else None}


def _show(config: pytest.Config) -> tuple[str | None, int] | None:
    value = _option(config, "agent_chaos_show")
    return None if value is None else parse_replay(value, "--agent-chaos-show")


def parse_otel(value: str, source: str) -> str:
    """An OTLP/JSON file path; the ``otel`` extra (opentelemetry-sdk) must be installed to write it."""
    from importlib.util import find_spec

    if find_spec("opentelemetry") is None or find_spec("opentelemetry.sdk") is None:
        raise pytest.UsageError(f"{source}={value!r} needs OpenTelemetry: pip install 'pytest-agentops[otel]'")
    return str(value)


def _setting(config: pytest.Config, name: str, parse: Any) -> Any:
    """A setting from the command line, else from its ini twin, parsed; None when neither is set. An ini value
    the command line overrides is parsed too: a broken one is a usage error, not hidden for as long as every
    run (CI's) happens to give the option."""
    ini = _ini(config, name)
    from_ini = parse(ini, ini_source(config, name)) if ini is not None else None
    cli = _option(config, name)
    return parse(cli, "--" + name.replace("_", "-")) if cli is not None else from_ini


def source_of(config: pytest.Config, name: str) -> str:
    """Where a setting's value came from, as its errors name it: ``--agent-chaos-x``, or its ini key
    (``ini_source``)."""
    return "--" + name.replace("_", "-") if config.getoption(name) is not None else ini_source(config, name)


def ini_source(config: pytest.Config, name: str) -> str:
    """Where an ini key's value came from: ``-o agent_chaos_x`` (the last ``-o`` wins, as in pytest), else the
    key with its file and line (``agent_chaos_x (pytest.ini:3)``), else ``agent_chaos_x (ini)``."""
    overrides = getattr(config.option, "override_ini", None) or ()
    if any(str(entry).split("=", 1)[0].strip() == name for entry in overrides):
        return f"-o {name}"
    path = config.inipath
    if path is None:
        return f"{name} (ini)"
    try:
        shown = os.path.relpath(path, config.invocation_params.dir)
    except ValueError:  # (another drive)
        shown = str(path)
    if len(shown) > len(str(path)):
        shown = str(path)
    line = _ini_line(path, name)
    return f"{name} ({shown}:{line})" if line else f"{name} ({shown})"


#: the sections pytest reads its settings from, by file (``pytest.toml`` also at its top level)
_PYTEST_SECTIONS = {".ini": ("pytest",), ".cfg": ("tool:pytest",), ".toml": ("tool.pytest", "tool.pytest.ini_options",
                                                                            "pytest")}


def _ini_line(path: Any, name: str) -> int | None:
    """The line of ``name`` in pytest's section of the config file ``path`` (an INI key starts its line; a key of
    another section, ``[testenv] setenv = agent_chaos_trials = 3``, or a continuation line is not it)."""
    suffix = os.path.splitext(str(path))[1]
    sections = _PYTEST_SECTIONS.get(suffix, ("pytest",))
    in_section = suffix == ".toml" and os.path.basename(str(path)) in ("pytest.toml", ".pytest.toml")
    indent = r"[ \t]*" if suffix == ".toml" else ""
    key = re.compile(rf"{indent}[\"']?{re.escape(name)}[\"']?[ \t]*[=:]")
    header = re.compile(r"[ \t]*\[([^\[\]]+)\][ \t]*(?:[#;].*)?$")
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for number, line in enumerate(itertools.islice(file, 100_000), 1):
                found = header.match(line)
                if found:
                    in_section = found.group(1).strip().replace('"', "") in sections
                elif in_section and key.match(line):
                    return number
    except OSError:
        pass
    return None


options_key = pytest.StashKey[ChaosOptions]()
results_key = pytest.StashKey[list]()
#: Under ``--agent-chaos-replay``: the scenarios whose campaigns were asked for, and those replayed.
seen_key = pytest.StashKey[list]()
replayed_key = pytest.StashKey[list]()
#: paired comparisons run by ``agent_chaos.compare``: (nodeid, ComparisonResult)
comparisons_key = pytest.StashKey[list]()
#: A report that could not be written at the end of the session: said after pytest's own summary.
write_error_key = pytest.StashKey[str]()
#: The session's trace events in memory and its ``TraceSpill``, where finished campaigns' traces past
#: ``campaigns.SESSION_TRACE_EVENTS`` wait for the reports (``campaigns._spill``)
spill_key = pytest.StashKey[object]()
#: Under xdist, the controller's spool directory (``spool``): here, so that asking costs no import of it.
spool_key = pytest.StashKey[str]()


def is_campaign_item(item: pytest.Item) -> bool:
    """Whether a collected test runs campaigns: it uses the ``agent_chaos`` fixture, or is a YAML scenario."""
    return "agent_chaos" in getattr(item, "fixturenames", ()) or type(item).__name__ == "ScenarioItem"
