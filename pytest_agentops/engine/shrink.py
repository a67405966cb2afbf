"""The faults a failing trial needs: delta debugging over the faults that fired in it.

A failing trial under chaos had, say, nine faults; usually one or two of them are why it failed. Each fault
that fires has an id (``plan.fault_id``), and a trial can be re-run with only some of its faults allowed
(``RunSettings.allowed_faults``): every other draw comes out fault-free. ``shrink_record`` runs Zeller's
``ddmin`` over the fired faults, re-running the one trial, until no single fault can be removed with the
trial still failing the same way (1-minimal), or its budget of re-runs is spent. The result reads
"fails with just: refund_order call 2 -> timeout".

The search depends only on the trial's seed and settings (the re-runs are the trial's own replays), so it
gives the same answer on every machine; the wall-clock budget is only a safety net.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ..errors import hide_own_frames
from ..records import MinimalFaults, TraceEvent, TrialRecord
from ..scenario import Scenario
from ..settings.run import RunSettings
from ..vtime.real import real_perf_counter
from .scheduler import Runner, campaign_patches

__tracebackhide__ = hide_own_frames

#: Re-runs one search may spend (a trial with n faults needs about n log n in the worst case).
DEFAULT_RUNS = 32
#: Wall-clock seconds one search may take, whatever its re-runs.
DEFAULT_BUDGET_S = 5.0


def failure_of(record: TrialRecord) -> str | None:
    """How a trial failed (None: it did not): its outcome, or the first violation of a completed trial."""
    if record.outcome != "completed":
        return record.outcome
    if record.violations:
        return f"violation:{record.violations[0]}"
    return None


def fired_faults(record: TrialRecord) -> list[tuple[str, str]]:
    """(id, readable label) of each fault that fired in a trial, in order, from its trace."""
    out: dict[str, str] = {}
    for event in record.trace:
        fid = event.data.get("fid") if event.kind in ("fault", "crash") else None
        if isinstance(fid, str) and fid not in out:
            out[fid] = _label(event)
    return list(out.items())


def _label(event: TraceEvent) -> str:
    d, name, what = event.data, event.name, event.outcome
    if event.kind == "crash":
        return f"crash {what} {name} (executed tool call {d.get('step')})"
    if name == "model":
        return f"model attempt {d.get('attempt')} -> {what}"
    if name == "drift":
        return f"context drift from model call {int(d.get('call', 0)) + 1}: {what}"
    if name == "model_output":
        return f"model reply {int(d.get('call', 0)) + 1} -> {what}"
    if d.get("scope") == "trial":
        return f"{name} down for the whole trial"
    if what == "latency":
        return f"{name} call {int(d.get('call', 0)) + 1} -> slow ({d.get('latency_s')}s)"
    return f"{name} call {int(d.get('call', 0)) + 1} -> {what}"


def ddmin(items: Sequence[str], fails: Callable[[Sequence[str]], bool | None]) -> tuple[list[str], bool]:
    """Zeller's ddmin: a subset of ``items`` (which fail) that still fails and loses that when any one item is
    removed; ``fails`` returns None when the budget is spent. Returns (subset, 1-minimal proven)."""
    current = list(items)
    n = 2
    while len(current) >= 2:
        size = len(current)
        chunks = [current[i * size // n:(i + 1) * size // n] for i in range(n)]
        reduced = False
        for chunk in chunks:
            verdict = fails(chunk)
            if verdict is None:
                return current, False
            if verdict:
                current, n, reduced = chunk, 2, True
                break
        if not reduced and n > 2:
            for chunk in chunks:
                rest = [x for x in current if x not in chunk]
                verdict = fails(rest)
                if verdict is None:
                    return current, False
                if verdict:
                    current, n, reduced = rest, max(n - 1, 2), True
                    break
        if not reduced:
            if n >= len(current):
                break
            n = min(len(current), 2 * n)
    if len(current) == 1:  # ddmin tried the empty set only through its complements: try it
        verdict = fails([])
        if verdict is None:
            return current, False
        if verdict:
            return [], True
    return current, True


def _run_one(scenario: Scenario, settings: RunSettings) -> TrialRecord:
    records, _ = Runner(scenario, settings).run()
    return records[0]


def shrink_record(scenario: Scenario, settings: RunSettings, index: int, *, record: TrialRecord | None = None,
                 max_runs: int = DEFAULT_RUNS, budget_s: float = DEFAULT_BUDGET_S) -> MinimalFaults | None:
    """The faults trial ``index`` of this campaign needs to fail (None: it does not fail). ``record``: the
    trial as it ran with all its faults (re-run when not given)."""
    base = dataclasses.replace(settings, replay=index, allowed_faults=None, early_stop=False, concurrency=1)
    if record is None:
        record = _run_one(scenario, base)
    failure = failure_of(record)
    if failure is None:
        return None
    fired = fired_faults(record)
    labels = dict(fired)
    deadline = real_perf_counter() + budget_s
    runs = 0
    seen: dict[frozenset[str], bool] = {}

    def fails(subset: Sequence[str]) -> bool | None:
        nonlocal runs
        key = frozenset(subset)
        if key in seen:
            return seen[key]
        if runs >= max_runs or real_perf_counter() > deadline:
            return None
        runs += 1
        rerun = _run_one(scenario, dataclasses.replace(base, allowed_faults=key))
        seen[key] = failure_of(rerun) == failure
        return seen[key]

    with campaign_patches():  # held across the re-runs: installing the time stand-ins once, not per re-run
        ids, minimal = ddmin([fid for fid, _ in fired], fails) if fired else ([], True)
    return MinimalFaults(index=index, failure=failure, faults=tuple(labels[i] for i in ids), fault_ids=tuple(ids),
                         fired=len(fired), runs=runs, minimal=minimal)
