"""The plugin's reports at the end of a session: the campaigns' report data gathered once (here, or sent by
pytest-xdist workers), the JSON report, the HTML report, the OpenTelemetry export, the terminal summary, and
``--agent-chaos-show`` (a trial of the last report, printed without running anything).

pytest glue only: what the reports hold is computed in ``pytest_agentops.report``. Imported when a session
has campaigns to report or a trial to show.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import pytest

from ..errors import hide_own_frames
from ..report.campaign_data import campaign_data, json_form, replay_hint
from .commands import literal, shown_node
from .options import ChaosOptions, comparisons_key, options_key, results_key

__tracebackhide__ = hide_own_frames

#: The campaigns' report data, (node id, data, the result when it ran in this process), gathered once.
data_key = pytest.StashKey[list]()
CACHE_REPORT = "agentops/last_report"


def otlp_endpoint_set() -> bool:
    """Whether the standard OpenTelemetry variables name an OTLP endpoint for traces (and the SDK is not off)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def wants(opts: ChaosOptions) -> dict[str, bool]:
    """What the session's reports need beyond the JSON report: per-trial series (HTML), every trace (OTel)."""
    return {"series": bool(opts.html), "all_traces": bool(opts.otel) or otlp_endpoint_set()}


def worker_data(config: pytest.Config, result: Any) -> dict[str, Any]:
    """What an xdist worker hands its controller for one campaign: its report data (``spool.put_campaign``)."""
    return campaign_data(result, **wants(config.stash[options_key]))


def gathered(config: pytest.Config) -> list[tuple[str, dict[str, Any], Any]]:
    """Every campaign of the session as (node id, report data, result or None), computed once."""
    cached = config.stash.get(data_key, None)
    if cached is not None:
        return cached
    need = wants(config.stash[options_key])
    out = []
    for nodeid, result in config.stash.get(results_key, []):
        if isinstance(result, dict):  # from an xdist worker
            out.append((nodeid, result, None))
        elif result.skipped is None:
            out.append((nodeid, campaign_data(result, **need), result))
    config.stash[data_key] = out
    return out


def write_reports(config: pytest.Config, opts: ChaosOptions, session: dict[str, Any] | None = None) -> None:
    """The JSON report, the HTML report and the OpenTelemetry export the session asked for (``session``: what
    the report says of the run as a whole, ``spool.session_summary``)."""
    if not (opts.report or opts.html or opts.otel or otlp_endpoint_set()):
        return
    campaigns = gathered(config)
    datas = [d for _, d, _ in campaigns]
    here = config.invocation_params.dir
    if opts.report:
        from ..report.json_report import write_report

        comparisons = [c for _, c in config.stash.get(comparisons_key, [])]
        # each campaign named by its test's node id (rootdir-relative) as well as its scenario: the gate tells apart
        # two campaigns of one scenario (a parametrized test) and matches a baseline by both
        # and the options of its printed replay command (``replay_args``: what ``--agent-chaos-show`` prints
        # after the launcher and the node id, which depend on how and where pytest was started)
        path = write_report(here / opts.report, [dict(json_form(d), nodeid=nodeid,
                                                      **_replay_args(config, opts, nodeid, d))
                                                 for nodeid, d, _ in campaigns],
                            comparisons=comparisons,
                            session=session)
        cache = getattr(config, "cache", None)
        if cache is not None:
            cache.set(CACHE_REPORT, str(Path(path).resolve()))
    if opts.html:
        from ..report.html import write_html

        write_html(here / opts.html, [dict(d, nodeid=nodeid) for nodeid, d, _ in campaigns])  # (its order)
    if (opts.otel or otlp_endpoint_set()) and datas:
        _export_otel(config, opts, datas)


def _replay_args(config: pytest.Config, opts: ChaosOptions, nodeid: str, data: dict[str, Any]) -> dict[str, str]:
    """The replay command's template from its options on (``--agent-chaos...``, ``{index}`` for the trial):
    what follows the launcher and the node id, which depend on how and where pytest was started."""
    template = data.get("replay_command")
    if not template:
        return {}
    prefix = f"{opts.launcher} {literal(_shown(config, nodeid))} "
    if template.startswith(prefix):
        return {"replay_args": template[len(prefix):]}
    start = template.find(" --agent-chaos")  # (a campaign another way: its command's options, from the first)
    return {"replay_args": template[start + 1:]} if start >= 0 else {}


def _shown(config: pytest.Config, nodeid: str) -> str:
    """A rootdir-relative node id as this run's commands show it (relative to where pytest was started)."""
    return shown_node(config.rootpath / nodeid.partition("::")[0], nodeid, config.invocation_params.dir)


def replay_shown(config: pytest.Config, opts: ChaosOptions, campaign: dict[str, Any], record: dict[str, Any]) -> str:
    """The command that re-runs a trial read back from a JSON report: as the run printed it (its options, the
    test's node id, relative to this run's rootdir as the report keeps it), started as this pytest was and from
    where it was; else ``replay_hint``'s."""
    args, nodeid = campaign.get("replay_args"), campaign.get("nodeid")
    if not isinstance(args, str) or not isinstance(nodeid, str):
        return replay_hint(campaign, record)
    return f"{opts.launcher} {shlex.quote(_shown(config, nodeid))} " + args.format(
        index=record["index"], seed=campaign["seed"], scenario=campaign["scenario"])


def _export_otel(config: pytest.Config, opts: ChaosOptions, datas: list[dict[str, Any]]) -> None:
    from importlib.util import find_spec

    if find_spec("opentelemetry") is None or find_spec("opentelemetry.sdk") is None:  # endpoint set, extra missing
        _say(config, "agentops: OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
                     "pip install 'pytest-agentops[otel]' to export the trials' spans")
        return
    from ..report.otel import export

    failures: list[str] = []
    export(datas, file=config.invocation_params.dir / opts.otel if opts.otel else None, endpoint=otlp_endpoint_set(),
           failures=failures)
    if failures:
        from ..harness.secrets import redact_text

        _say(config, f"agentops: the OTLP endpoint (OTEL_EXPORTER_OTLP_*) did not take the trials' spans: "
                     f"{redact_text(failures[0])[:300]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1
                                                            else ""))


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        if getattr(reporter._tw, "width_of_current_line", 0):  # (said at the session's end: after the progress)
            reporter._tw.line()
        reporter.write_line(line, yellow=True)


def terminal_summary(reporter: Any, config: pytest.Config) -> None:
    """The "agent chaos" section: each campaign at the session's verbosity (``report.summary``)."""
    from ..report.summary import campaign_lines

    verbosity = config.get_verbosity()
    campaigns = gathered(config)
    if not campaigns or verbosity < -1:
        return
    from ..harness.secrets import redact_text
    from ..stable_repr import printable

    reporter.section("agent chaos")
    for nodeid, data, result in campaigns:
        if verbosity >= 0:
            reporter.write_line(redact_text(nodeid))  # (a parameter id may hold a secret)
        try:
            lines = campaign_lines(data, verbosity, result)
        except OSError as exc:  # a campaign an xdist worker spooled, damaged since: said, not a traceback
            lines = [f"ERROR: {nodeid}: its records could not be read: {exc.filename or ''} ({exc.strerror or exc})"]
        for line in lines:  # (a replay's timeline shows its trace's event and model names, not redacted before)
            reporter.write_line(printable(redact_text(line)),
                                red=line.startswith("ERROR") or line.lstrip().startswith("WARNING"))


def show(config: pytest.Config, opts: ChaosOptions) -> None:
    """``--agent-chaos-show``: print one trial of the last JSON report (``--agent-chaos-report``, else the one
    the last run wrote) as a timeline. A usage error when there is no report or no such trial."""
    from ..errors import ReportError
    from ..report.json_report import read_report
    from ..report.timeline import find_trial, timeline_lines

    assert opts.show is not None
    path = _last_report(config, opts)
    try:
        report = read_report(path)
    except FileNotFoundError:
        raise pytest.UsageError(f"--agent-chaos-show: no report at {path} (write one with "
                                "--agent-chaos-report=PATH)") from None
    except (ReportError, ValueError) as exc:
        shown = str(exc) if str(path) in str(exc) else f"{path}: {exc}"  # (json's own message names no file)
        raise pytest.UsageError(f"--agent-chaos-show: {shown}") from None
    try:
        campaign, record = find_trial(report, *opts.show)
    except LookupError as exc:
        raise pytest.UsageError(f"--agent-chaos-show: {exc.args[0]} (in {path})") from None
    from ..errors import GateUsageError
    from ..gate import check_record

    trial = record.get("id", "?") if isinstance(record, dict) else "?"
    where = f"{path}: campaign {campaign.get('scenario')!r}, {trial}: record"
    try:
        check_record(where, record)
        lines = [f"{campaign['scenario']} {record['id']} from {path} (not re-run):",
                 *timeline_lines(campaign["scenario"], record, replay_shown(config, opts, campaign, record))]
    except GateUsageError as exc:
        raise pytest.UsageError(f"--agent-chaos-show: {exc}") from None
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:  # (its trace: not as written)
        raise pytest.UsageError(f"--agent-chaos-show: {where}: not a record as a report writes it "
                                f"({type(exc).__name__}: {exc}); re-run the campaign to write it again") from None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter is not None else print
    from ..harness.secrets import redact_text
    from ..stable_repr import printable

    for line in lines:  # (an agent's words in it: shown, never acted on by the terminal or a CI log)
        write(printable(redact_text(line)))


def _last_report(config: pytest.Config, opts: ChaosOptions) -> Path:
    if opts.report:
        return config.invocation_params.dir / opts.report
    cache = getattr(config, "cache", None)
    last = cache.get(CACHE_REPORT, None) if cache is not None else None
    if isinstance(last, str):
        return Path(last)
    raise pytest.UsageError("--agent-chaos-show: which report? No run has written one yet (in this project's pytest "
                            "cache); give it with --agent-chaos-report=PATH")
