"""The session's output files checked when the session starts (``pytest_sessionstart``), not when it ends:
a report path that is a directory, or sits in a directory that cannot be written or made, is a usage error
before any test runs; and the JSON report is replaced at once by a "running" one, so a run killed before its
end never leaves the last run's report looking like its own (``agentops-gate`` fails a report whose run
never finished)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..errors import hide_own_frames
from .options import ChaosOptions, source_of, write_error_key

__tracebackhide__ = hide_own_frames

#: What a started run's report says of its session until the run ends and writes the real one.
RUNNING_SESSION = {"exit_status": None, "interrupted": False, "expected": [], "missing": [], "running": True}


def prepare_outputs(config: pytest.Config, opts: ChaosOptions) -> None:
    """Check every output path the session was given and mark the JSON report as running (the controller only:
    xdist workers write nothing)."""
    if hasattr(config, "workerinput") or opts.show is not None:  # --agent-chaos-show reads the report
        return
    here = config.invocation_params.dir
    for name, value in (("agent_chaos_report", opts.report), ("agent_chaos_html", opts.html),
                        ("agent_chaos_otel", opts.otel)):
        if value:
            _check_writable(source_of(config, name), value, here / value)
    if opts.record:
        _check_directory(source_of(config, "agent_chaos_record"), opts.record)
    if opts.report:
        from ..report.json_report import write_report

        try:
            write_report(here / opts.report, [], session=RUNNING_SESSION)
        except OSError as exc:
            raise pytest.UsageError(f"{source_of(config, 'agent_chaos_report')}={opts.report}: cannot write it "
                                    f"({exc.strerror or exc})") from None


def _check_directory(flag: str, value: str) -> None:
    """A directory to write into (``--agent-chaos-record``), made now if it is not there: a file, or a place where
    no directory can be made, is a usage error before any test runs (it was a ``FileExistsError`` traceback in
    the first test that recorded)."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise pytest.UsageError(f"{flag}={value}: is a file; give a directory to write the cassettes in")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise pytest.UsageError(f"{flag}={value}: cannot make the directory ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"{flag}={value}: cannot be written (permission denied)")


def _check_writable(flag: str, value: str, path: Path) -> None:
    if path.is_dir():
        raise pytest.UsageError(f"{flag}={value}: is a directory; give the path of a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise pytest.UsageError(f"{flag}={value}: cannot make its directory {path.parent} "
                                f"({exc.strerror or exc})") from None
    if not path.parent.is_dir():
        raise pytest.UsageError(f"{flag}={value}: {path.parent} is not a directory")
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise pytest.UsageError(f"{flag}={value}: cannot be written (permission denied)")


def say_write_error(reporter: object, config: pytest.Config) -> None:
    """After pytest's summary: the report that could not be written at the end, if any."""
    message = config.stash.get(write_error_key, None)
    if message and reporter is not None:
        reporter.write_line(message, red=True, bold=True)  # type: ignore[attr-defined]
