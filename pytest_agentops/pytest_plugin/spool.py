"""What the report must know about the session beyond its campaigns, and how xdist workers hand campaigns over.

- **The spool.** Under pytest-xdist each campaign goes to the controller as soon as it finishes: the worker
  writes it to a spool directory the controller named (one file per campaign, written atomically, a record
  per line), so a worker that dies loses nothing that had finished. The controller reads the spool at the end
  of the session, a campaign's records only when a report reads them, and removes it when the session ends.
- **Expected campaigns.** The collected tests that run campaigns (those using the ``agent_chaos`` fixture,
  and YAML scenario items), recorded when collection finishes (by each worker under xdist, into the spool);
  with each test's outcome, the report lists those that never reported a campaign (a crashed worker, an
  interrupt, an error before the campaign ran), and the gate fails such a report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ..errors import hide_own_frames
from ..harness.secrets import redact_data, refresh
from .options import spool_key

__tracebackhide__ = hide_own_frames

SPOOL = "agentops_spool"
_seq_key = pytest.StashKey[list]()


def controller_spool(config: pytest.Config) -> str:
    """The spool directory of this (controller) session, made on first use."""
    path = config.stash.get(spool_key, None)
    if path is None:
        path = config.stash[spool_key] = tempfile.mkdtemp(prefix="agentops-spool-")
    return path


def worker_spool(config: pytest.Config) -> Path | None:
    """Under xdist, in a worker: the controller's spool directory."""
    workerinput = getattr(config, "workerinput", None)
    path = workerinput.get(SPOOL) if workerinput else None
    return Path(path) if path else None


def _spool_file(config: pytest.Config, spool: Path, kind: str) -> Path:
    seq = config.stash.setdefault(_seq_key, [0])
    seq[0] += 1
    worker = config.workerinput.get("workerid", "gw")  # type: ignore[attr-defined]
    return spool / f"{kind}-{worker}-{seq[0]:06d}.json"


def put(config: pytest.Config, kind: str, payload: Any) -> bool:
    """A worker hands ``payload`` (JSON data) to its controller now; False when not an xdist worker."""
    spool = worker_spool(config)
    if spool is None:
        return False
    target = _spool_file(config, spool, kind)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, allow_nan=False), encoding="utf-8")
    os.replace(tmp, target)
    return True


def put_campaign(config: pytest.Config, nodeid: str, data: dict[str, Any]) -> bool:
    """A worker hands a campaign's report data to its controller now, written a record at a time: one line of
    JSON ``[nodeid, the data without its records, whether it has records]``, then one line per record (the
    worker never holds them all, and the controller reads them when a report does: ``spooled``)."""
    spool = worker_spool(config)
    if spool is None:
        return False
    target = _spool_file(config, spool, "campaign")
    tmp = target.with_suffix(".tmp")
    head = {k: v for k, v in data.items() if k != "records"}
    refresh()  # (every text redacted before it reaches the file: a killed run leaves the spool behind)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps([nodeid, redact_data(head, numbers=False), "records" in data], allow_nan=False)
                     + "\n")
            for record in data.get("records", ()):
                fh.write(json.dumps(redact_data(record, numbers=False), allow_nan=False) + "\n")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def take(config: pytest.Config) -> dict[str, list[Any]]:
    """At the controller's end of session: everything the workers handed over, by kind, in order. A campaign's
    records stay in the spool until a report reads them; ``discard`` removes the spool."""
    path = config.stash.get(spool_key, None)
    out: dict[str, list[Any]] = {}
    if path is None:
        return out
    files = [(file, *_spooled_as(file)) for file in sorted(Path(path).glob("*.json"))]
    # (worker, test) -> when that worker began running the test again: its campaigns spooled before are dropped
    retracted: dict[tuple[str, str], int] = {}
    for file, kind, worker, seq in files:
        if kind == "retract":
            with contextlib.suppress(ValueError, OSError):
                key = (worker, json.loads(file.read_text(encoding="utf-8")))
                retracted[key] = max(seq, retracted.get(key, seq))
    for file, kind, worker, seq in files:
        if kind == "retract":
            continue
        with contextlib.suppress(ValueError, OSError):  # a half-written file cannot be: writes are atomic
            if kind == "campaign":
                from .spooled import spooled_campaign  # (only when a worker spooled a campaign)

                campaign = spooled_campaign(file)
                if retracted.get((worker, campaign[0]), -1) < seq:
                    out.setdefault(kind, []).append(campaign)
            else:
                out.setdefault(kind, []).append(json.loads(file.read_text(encoding="utf-8")))
    return out


def _spooled_as(file: Path) -> tuple[str, str, int]:
    """(kind, worker, sequence number) of a spool file's name (``_spool_file``)."""
    head, _, seq = file.stem.rpartition("-")
    kind, _, worker = head.partition("-")
    return kind, worker, int(seq) if seq.isdigit() else -1


def discard(config: pytest.Config) -> None:
    """Remove the controller's spool (at the end of the session, once the reports and the summary are written)."""
    path = config.stash.get(spool_key, None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def session_summary(expected: set[str], outcomes: dict[str, str], exitstatus: int,
                    reported: set[str], stopped: str | None = None) -> dict[str, Any]:
    """The report's ``session``: the exit status, whether the run was interrupted (Ctrl-C), why it stopped early
    (``-x``/``--maxfail``: pytest's words; xdist ends such a run as interrupted), the campaign tests that were
    expected, and those of them that never reported a campaign (neither passed nor skipped without one)."""
    missing = sorted(n for n in expected if n not in reported and outcomes.get(n) not in ("passed", "skipped"))
    interrupted = int(exitstatus) == int(pytest.ExitCode.INTERRUPTED) and not stopped
    summary = {"exit_status": int(exitstatus), "interrupted": interrupted, "expected": sorted(expected),
               "missing": missing}
    if stopped:
        summary["stopped"] = stopped
    return summary


def stopped_early(session: pytest.Session) -> str | None:
    """Why pytest stopped at a failure, in its words: ``-x``/``--maxfail`` (``stopping after 1 failures``, also
    as the controller of xdist's workers counts them) or ``--stepwise``; None otherwise (a Ctrl-C, also one a
    worker received, is an interrupt, not a stop). Said even when no test was left to run: the gate only minds
    the campaign tests that never reported."""
    if isinstance(session.shouldfail, str) and session.shouldfail:
        return session.shouldfail
    stepwise = session.config.getoption("stepwise", False) or session.config.getoption("stepwise_skip", False)
    if stepwise and isinstance(session.shouldstop, str) and session.shouldstop:
        return f"--stepwise: {session.shouldstop}"
    return None
