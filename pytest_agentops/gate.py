"""The pre-canary gate: read campaign reports, compare with a baseline run, exit 0 pass / 1 fail / 2 usage.

``agentops-gate report.json [--baseline base.json]`` (or ``python -m pytest_agentops gate ...``).
A paired comparison the reports hold (``agent_chaos.compare``) fails the gate when it found a regression.
A campaign fails the gate when a verdict failed, when a verdict is inconclusive (unless
``--allow-inconclusive``), or, against a baseline, when a rate dropped or a token/cost p95 grew, by tests that
share ``--alpha`` (each at ``--alpha`` over their number in the run: Bonferroni), so that an unchanged agent fails
the gate with probability at most ``--alpha``; each test, at its share ``a`` of it:

* a rate of trials (completion): the one-sided Fisher exact test when both campaigns ran every trial; when
  either stopped early, by its judges or its spend cap (its count depends on when it stopped), the anytime-valid
  mixture bounds of the two rates at a/2 each must separate (candidate's upper below baseline's lower, minus
  ``--margin``);
* a share inside trials (tool_success_rate): trial by trial, the betting bounds of the two per-trial means at
  a/2 each must separate;
* the p95 growth: a growth beyond ``--max-growth`` of the candidate's true p95 over the baseline's. The
  baseline's order statistic that is at or above its true p95 with probability >= 1 - a/2 bounds it from
  above (whatever the distribution and its ties); a candidate whose p95 is within the growth has at most 5% of
  its trials above (1 + ``--max-growth``) x that bound, tested by an exact binomial test (or, for a candidate
  that stopped early, an anytime-valid bound) at a/2. The baseline must have run every trial (an
  early-stopped baseline is refused).

A campaign whose baseline ran under another fault profile (``--agent-chaos-profile``) is not compared, and fails
the gate (``baseline:profile``): the tests would measure the profiles, not the agent.

A usage error (exit 2): a bad option (``--max-growth`` NaN or infinite too), a ``--markdown`` path that cannot
be written (checked before the reports are read), unreadable reports, a field the gate reads that is not what it
must be (the message names the file, the JSON path and what was expected; a rate's ``n`` more than the chances its
records hold), a report of a pytest run (its
campaigns have node ids) without its ``session``, and a baseline whose scenarios the candidate lacks (or none in
common). Campaigns marked ``xfail`` are expected to fail and only reported. A markdown summary is printed
(and written to ``--markdown PATH`` if given, and appended to ``$GITHUB_STEP_SUMMARY`` with ``--markdown``)
for the CI job page. Paired A/B on common seeds, stronger than
any report-vs-report test, is ``agentops-compare`` (``pytest_agentops.compare``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._validation import did_you_mean
from .errors import GateUsageError, ReportError, hide_own_frames
from .records import OUTCOMES
from .report.json_report import read_report
from .stats import betting_lower, betting_upper, fisher_less_pvalue
from .stats.binomial import binom_sf
from .stats.compare import mixture_rate_bounds
from .stats.quantiles import quantile_upper_rank

__tracebackhide__ = hide_own_frames

#: rate metrics where lower is worse, compared with the baseline by a one-sided test
HIGHER_IS_BETTER = ("completion_rate", "tool_success_rate", "resume_success_rate")
#: the rates every campaign's report has (``tool_success_rate`` only one with tool calls, ``resume_success_rate``
#: only one with crashes)
_ALWAYS = ("completion_rate",)
#: how a share inside trials is read off a report's per-trial records: (successes, chances) of one trial
_PER_TRIAL = {"tool_success_rate": lambda r: (r["tool_calls"] - r["tool_failures"], r["tool_calls"]),
              "completion_rate": lambda r: (int(r.get("outcome") == "completed"), 1)}
#: metrics whose unit is not the trial: compared trial by trial (the share of each trial's chances)
_SHARES = ("tool_success_rate",)
#: quantiles where growth is worse
GROWTH_CHECKED = (("tokens_per_task", "p95"), ("cost_usd_per_task", "p95"))


@dataclass(frozen=True, slots=True)
class GateFinding:
    """One reason a campaign passes or fails the gate."""

    scenario: str
    check: str
    ok: bool
    detail: str
    tested: bool = True  # False: a test against the baseline that could not be made (NOT TESTED) at the full alpha


#: what every campaign of a report must have for the gate to read it
_CAMPAIGN_KEYS = {"scenario": str, "verdicts": list, "metrics": dict, "records": list}


def campaign_key(campaign: dict[str, Any]) -> str:
    """How the gate names a campaign, in findings and when matching a baseline: its test's node id and its
    scenario (``tests/test_x.py::test_refund[refund]``), or the scenario alone in a report without node ids."""
    nodeid = campaign.get("nodeid")
    return f"{nodeid}[{campaign['scenario']}]" if nodeid and not nodeid.endswith(f"::{campaign['scenario']}") \
        else str(nodeid or campaign["scenario"])


def _read(path: str) -> dict[str, Any]:
    try:
        report = read_report(path)
    except FileNotFoundError:
        raise GateUsageError(f"{path}: no such report file") from None
    except IsADirectoryError:
        raise GateUsageError(f"{path}: a directory, not a report file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GateUsageError(f"{path}: cannot read it ({type(exc).__name__}: {exc})") from None
    except ReportError as exc:  # (its message names the file already)
        raise GateUsageError(str(exc)) from None
    except ValueError as exc:
        raise GateUsageError(f"{path}: {exc}") from None
    campaigns = report.get("campaigns")
    if not isinstance(campaigns, list):
        raise GateUsageError(f"{path}: 'campaigns' must be a list of campaigns, got {type(campaigns).__name__}")
    for i, campaign in enumerate(campaigns):
        _check_campaign(f"{path}: campaigns[{i}]", campaign)
    session = report.get("session")
    if session is None and any(c.get("nodeid") for c in campaigns):
        raise GateUsageError(f"{path}: 'session' is missing, but the campaigns have node ids: the report of a pytest "
                             "run always says what it knows of the run (exit status, campaign tests that never "
                             "reported a campaign); without it the gate cannot tell whether the run was complete")
    if session is not None:
        if not isinstance(session, dict):
            raise GateUsageError(f"{path}: 'session' must be an object, got {type(session).__name__}")
        _check_fields(f"{path}: session", session, _SESSION_FIELDS)
    return report


# --- what each field the gate reads must be -------------------------------------------------------------------
# (a report the plugin or ``write_report`` writes holds no NaN or Infinity: a value that is not finite is null)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite number (an integer too large for a float, ``10**400``, is not: arithmetic on it overflows)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


#: a kind of field: (how an error says it, its test)
_STRING = ("a string", lambda v: isinstance(v, str))
_FLAG = ("true or false", lambda v: isinstance(v, bool))
_WHOLE = ("a whole number", _is_int)
_COUNT = ("a whole number >= 0", lambda v: _is_int(v) and v >= 0)
_NUMBER = ("a number", _is_number)
_OBJECT = ("an object", lambda v: isinstance(v, dict))
_LIST = ("a list", lambda v: isinstance(v, list))
_STRINGS = ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))

_UNIT = ("a whole number >= 1", lambda v: _is_int(v) and v >= 1)

#: field: (its kind, whether it may be null or absent)
_SESSION_FIELDS = {"running": (_FLAG, True), "interrupted": (_FLAG, True), "exit_status": (_WHOLE, True),
                   "missing": (_STRINGS, True), "stopped": (_STRING, True)}
_CAMPAIGN_FIELDS = {"nodeid": (_STRING, True), "smoke": (_FLAG, True), "replay": (_COUNT, True),
                    "xfail": (_STRING, True), "stopped_early": (_FLAG, True), "trials": (_COUNT, True),
                    "outcomes": (_OBJECT, True), "unit_trials": (_UNIT, True), "profile": (_STRING, True)}
_COMPARISON_FIELDS = {"candidate": (_STRING, False), "baseline": (_STRING, False), "passed": (_FLAG, False),
                      "pairs": (_COUNT, False), "findings": (_LIST, False)}
_VERDICT_FIELDS = {"estimate": (_NUMBER, True), "bound": (_NUMBER, True), "trials_needed": (_COUNT, True)}
_RATE_FIELDS = {"k": (_COUNT, True), "n": (_COUNT, True)}
#: what the gate reads off a trial's record (the per-trial shares and values it compares with a baseline's)
_AMOUNT = ("a number >= 0", lambda v: _is_number(v) and v >= 0)
_RECORD_FIELDS = {"tokens": (_AMOUNT, False), "cost_usd": (_AMOUNT, False), "tool_calls": (_COUNT, False),
                  "tool_failures": (_COUNT, False), "outcome": (_STRING, False)}


def _got(value: Any) -> str:
    """What a field holds, for an error: its JSON spelling when it is a number that is not finite, else its type
    (with the value, when that is short)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, (str, int, float)):
        text = repr(value)
        return f"{type(value).__name__} {text if len(text) <= 40 else text[:36] + '...'}"
    return type(value).__name__


def _not_an_outcome(where: str, name: Any) -> GateUsageError:
    """The one wording for an outcome name that is not one, in ``outcomes`` and in ``records[].outcome``."""
    return GateUsageError(f"{where}: not an outcome{did_you_mean(name, OUTCOMES)}; a trial's outcome is one of "
                          f"{', '.join(OUTCOMES)}")


def _check_fields(where: str, data: dict[str, Any], fields: dict[str, Any]) -> None:
    for key, ((wording, test), nullable) in fields.items():
        value = data.get(key)
        if not ((value is None and nullable) or test(value)):
            expected = f"{wording.replace(' or ', ', ')} or null" if nullable else wording
            raise GateUsageError(f"{where}.{key} must be {expected}, got {_got(value)}")


def _check_campaign(where: str, campaign: Any) -> None:
    if not isinstance(campaign, dict):
        raise GateUsageError(f"{where} must be an object, got {type(campaign).__name__}")
    for key, kind in _CAMPAIGN_KEYS.items():
        if not isinstance(campaign.get(key), kind):
            raise GateUsageError(f"{where}.{key} must be a {kind.__name__}, got {type(campaign.get(key)).__name__}")
    _check_fields(where, campaign, _CAMPAIGN_FIELDS)
    for outcome, count in (campaign.get("outcomes") or {}).items():
        if outcome not in OUTCOMES:
            raise _not_an_outcome(f"{where}.outcomes.{outcome}", outcome)
        if not _COUNT[1](count):
            raise GateUsageError(f"{where}.outcomes.{outcome} must be {_COUNT[0]}, got {_got(count)}")
    for j, verdict in enumerate(campaign["verdicts"]):
        _check_verdict(f"{where}.verdicts[{j}]", verdict)
    metrics = campaign["metrics"]
    ran = campaign.get("trials") != 0  # (a campaign interrupted before its first trial ended has no rates)
    for metric in _ALWAYS if ran else ():  # (left out, the test against a baseline was dropped without a word)
        if not isinstance(metrics.get(metric), dict):
            got = _got(metrics[metric]) if metric in metrics else "nothing"
            raise GateUsageError(f"{where}.metrics.{metric} must be an object (every campaign's report has it), got "
                                 f"{got}")
    trials = campaign.get("trials")
    if trials is not None and len(campaign["records"]) != trials:
        raise GateUsageError(f"{where}.records holds {len(campaign['records'])} record(s) for trials={trials}: a "
                             "report has one per trial")
    for metric in (*HIGHER_IS_BETTER, *(m for m, _ in GROWTH_CHECKED)):
        if metrics.get(metric) is not None and not isinstance(metrics[metric], dict):
            raise GateUsageError(f"{where}.metrics.{metric} must be an object or null, got {_got(metrics[metric])}")
    for metric in HIGHER_IS_BETTER:
        if metrics.get(metric):
            _check_fields(f"{where}.metrics.{metric}", metrics[metric], _RATE_FIELDS)
            k, n = metrics[metric].get("k"), metrics[metric].get("n")
            if k is not None and (n is None or k > n):
                raise GateUsageError(f"{where}.metrics.{metric}: k={k} of n={n}: n must be a whole number >= k")
            most = _most_chances(metric, campaign["records"])
            if n is not None and n > most:
                raise GateUsageError(f"{where}.metrics.{metric}: n={_got(n)} is more than the {most:,} chance(s) "
                                     "its records hold")
    rate = metrics.get("completion_rate") or {}
    if ran and (rate.get("k") is None or rate.get("n") is None):  # (null: the test against a baseline was dropped)
        raise GateUsageError(f"{where}.metrics.completion_rate must have k and n (every trial has the chance), got "
                             f"k={_got(rate.get('k'))}, n={_got(rate.get('n'))}")
    for metric, q in GROWTH_CHECKED:
        if metrics.get(metric):
            _check_fields(f"{where}.metrics.{metric}", metrics[metric], {q: (_NUMBER, True)})
    for r, record in enumerate(campaign["records"]):
        check_record(f"{where}.records[{r}]", record)


def check_record(where: str, record: Any) -> None:
    """``GateUsageError`` naming the field (``where.key``) unless ``record`` is a trial record as a report writes it."""
    if not isinstance(record, dict):
        raise GateUsageError(f"{where} must be an object, got {_got(record)}")
    _check_fields(where, record, _RECORD_FIELDS)
    if record["outcome"] not in OUTCOMES:
        raise _not_an_outcome(f"{where}.outcome={_got(record['outcome'])}", record["outcome"])
    if record["tool_failures"] > record["tool_calls"]:
        raise GateUsageError(f"{where}: tool_failures={record['tool_failures']} is more than "
                             f"tool_calls={record['tool_calls']}")


def _most_chances(metric: str, records: list[Any]) -> int:
    """The most chances a rate can have over a report's records: one per trial (completion), one per tool call
    (tool success), and at most a million per trial (a restart's resume) for a rate of another kind."""
    if metric == "completion_rate":
        return len(records)
    if metric == "tool_success_rate":
        return sum(r.get("tool_calls", 0) for r in records if isinstance(r, dict) and _is_int(r.get("tool_calls")))
    return 10**6 * len(records)


#: what every verdict of a report must have for the gate to read it
_VERDICTS = ("pass", "fail", "inconclusive")


def _check_verdict(where: str, verdict: Any) -> None:
    if not isinstance(verdict, dict):
        raise GateUsageError(f"{where} must be an object, got {type(verdict).__name__}")
    for key in ("key", "expression"):
        if not isinstance(verdict.get(key), str):
            raise GateUsageError(f"{where}.{key} must be a string, got {type(verdict.get(key)).__name__}")
    if verdict.get("verdict") not in _VERDICTS:
        raise GateUsageError(f"{where}.verdict must be one of {', '.join(_VERDICTS)}, got {verdict.get('verdict')!r}")
    _check_fields(where, verdict, _VERDICT_FIELDS)


def _campaigns(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every campaign of the reports that is evidence (not a smoke or replay run), by ``campaign_key``; a key
    seen twice (one test running one scenario twice) keeps both, numbered."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        for campaign in _read(path)["campaigns"]:
            if campaign.get("replay") is not None or campaign.get("smoke"):
                continue  # a replay or smoke run is no evidence for a gate
            key = base = campaign_key(campaign)
            n = 1
            while key in out:
                n += 1
                key = f"{base} #{n}"
            out[key] = campaign
    return out


def comparison_findings(paths: Sequence[str]) -> list[GateFinding]:
    """A finding per paired comparison the reports hold (``agent_chaos.compare``: the report's ``comparisons``):
    failing when it found a regression (its test failed; the gate, which read only campaigns, passed such a
    report with ``--allow-incomplete``)."""
    findings = []
    for path in paths:
        comparisons = _read(path).get("comparisons") or []
        if not isinstance(comparisons, list):
            raise GateUsageError(f"{path}: 'comparisons' must be a list, got {type(comparisons).__name__}")
        for i, c in enumerate(comparisons):
            where = f"{path}: comparisons[{i}]"
            if not isinstance(c, dict):
                raise GateUsageError(f"{where} must be an object, got {_got(c)}")
            _check_fields(where, c, _COMPARISON_FIELDS)
            shown = []
            for j, f in enumerate(c["findings"]):
                if not isinstance(f, dict) or not isinstance(f.get("metric"), str) \
                        or not isinstance(f.get("verdict"), str):
                    raise GateUsageError(f"{where}.findings[{j}] must be an object with a metric and a verdict")
                shown.append(f"{f['metric']}: {f['verdict']}")
            findings.append(GateFinding(f"{c['candidate']} vs {c['baseline']}", "comparison", c["passed"],
                                        f"paired on common seeds, {c['pairs']} pair(s): " + "; ".join(shown)))
    return findings


def incomplete_runs(paths: Sequence[str]) -> list[GateFinding]:
    """What the reports say of their runs as a whole: an interrupted run, a pytest exit status other than
    0 (passed) or 1 (tests failed), campaign tests that never reported a campaign (a crashed xdist worker, an
    error before the campaign ran). Each is a failing finding: the report is not the whole evidence."""
    findings = []
    for path in paths:
        session = _read(path).get("session")
        if not session:
            continue
        if session.get("running"):
            findings.append(GateFinding("(run)", "finished", False, f"{path}: the run that wrote this report never "
                                        "finished (killed, or still running): it holds no campaigns of that run"))
            continue
        if session.get("interrupted"):
            findings.append(GateFinding("(run)", "complete", False, f"{path}: the run was interrupted (Ctrl-C): "
                                        "its campaigns hold only the trials that finished before it"))
        stopped = session.get("stopped")
        status = session.get("exit_status")
        if status not in (0, 1, None) and not session.get("interrupted") and not (stopped and status == 2):
            # (xdist ends a run -x stopped with status 2; any other status is pytest's internal or usage error)
            findings.append(GateFinding("(run)", "complete", False, f"{path}: pytest exited with status {status} "
                                        "(an internal or usage error): the run may be incomplete"))
        missing = session.get("missing") or []
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            why = f"the run stopped early: {stopped}; failed or not run" if stopped else \
                "crashed worker, interrupt or error"
            findings.append(GateFinding("(run)", "complete", False, f"{path}: {len(missing)} campaign test(s) "
                                        f"never reported a campaign ({why}): {shown}"))
    return findings


def evaluate_gate(current: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]] | None, *,
                  alpha: float = 0.05, max_growth: float = 0.2, allow_inconclusive: bool = False,
                  margin: float = 0.0) -> list[GateFinding]:
    """Every finding for every campaign in ``current`` (pure: no I/O). The tests against the baseline share
    ``alpha`` (Bonferroni: each at ``alpha`` over their number), so that an unchanged agent fails them with
    probability at most ``alpha``: two rate checks of one campaign at ``alpha`` each flagged it in 7% of runs, a
    report of five scenarios in 17%. The candidate's own verdicts keep their own error rates on top (an agent at
    its thresholds fails through them too)."""
    bases = {} if baseline is None else {name: baseline[name] for name in current
                                         if name in baseline and not current[name].get("xfail")}
    unlike = {name: (current[name].get("profile"), base.get("profile")) for name, base in bases.items()
              if current[name].get("profile") != base.get("profile")}
    bases = {name: base for name, base in bases.items() if name not in unlike}
    tests = sum(f.tested for name, base in bases.items()
                for f in _baseline_findings(name, current[name], base, alpha, max_growth, margin))
    share = alpha / max(tests, 1)
    findings: list[GateFinding] = []
    for name, campaign in sorted(current.items()):
        findings += _verdict_findings(name, campaign, allow_inconclusive)
        if name in bases:
            findings += _baseline_findings(name, campaign, bases[name], share, max_growth, margin)
        if name in unlike:
            now, then = unlike[name]
            findings.append(GateFinding(name, "baseline:profile", False, (
                f"ran under fault profile {now!r}, its baseline under {then!r}: a comparison of the two would measure "
                "the profiles, not the agent (not compared; rerun one under the other's --agent-chaos-profile)")))
    return findings


def _errors(campaign: dict[str, Any]) -> int:
    """The campaign's trials that ended in an error: its ``outcomes``' count, or, where a report has none (it may
    be null or left out), its records' (a review: a campaign of errors without ``outcomes`` passed the gate, "no
    trial ended in an error"; one with ``"outcomes": null`` crashed it)."""
    outcomes = campaign.get("outcomes")
    counted = outcomes.get("error", 0) if isinstance(outcomes, dict) else 0
    recorded = sum(1 for record in campaign.get("records") or () if record.get("outcome") == "error")
    return max(counted, recorded)  # (the two disagree only in a report edited by hand: the more errors count)


def _verdict_findings(name: str, campaign: dict[str, Any], allow_inconclusive: bool) -> list[GateFinding]:
    """A campaign's own verdicts (an ``xfail`` campaign's failures expected), or that it had none to judge."""
    expected_failure = bool(campaign.get("xfail"))
    if not campaign.get("verdicts") and not expected_failure:
        errors = _errors(campaign)
        return [GateFinding(name, "no expectations", not errors,
                            f"no expectation to judge; {errors} of {campaign.get('trials')} trial(s) ended in an "
                            "error" if errors else "no expectation to judge; no trial ended in an error")]
    findings = []
    for v in campaign.get("verdicts", []):
        ok = v["verdict"] == "pass" or (v["verdict"] == "inconclusive" and allow_inconclusive)
        detail = f"{v['key']} {v['expression']}: {v['verdict']} (estimate {v['estimate']}, bound {v['bound']})"
        if v.get("trials_needed"):
            detail += f"; a rerun with trials={v['trials_needed']} would decide with probability >= 80%"
        findings.append(GateFinding(name, "verdict", ok or expected_failure,
                                    detail + (" [xfail: expected]" if expected_failure and not ok else "")))
    return findings


def _baseline_findings(name: str, campaign: dict[str, Any], base: dict[str, Any], alpha: float, max_growth: float,
                       margin: float) -> list[GateFinding]:
    """A campaign's tests against its baseline (rate drops, p95 growth), each at ``alpha``."""
    found = [_rate_regression(name, metric, campaign, base, alpha, margin) for metric in HIGHER_IS_BETTER]
    found += [_growth(name, metric, q, campaign, base, alpha, max_growth) for metric, q in GROWTH_CHECKED]
    return [f for f in found if f is not None]


def _stopped(campaign: dict[str, Any]) -> bool:
    """Whether the campaign stopped before its planned trials on what its trials did: its judges' early stop, or
    its spend cap (costly trials end it sooner: a review saw a capped campaign's 21 of 100 trials tested as a
    full run, by Fisher's fixed-sample test)."""
    spend = campaign.get("spend")
    return campaign.get("stopped_early") is True or (isinstance(spend, dict) and spend.get("stopped_by_cap") is True)


def _rate_regression(name: str, metric: str, cur: dict[str, Any], base: dict[str, Any], alpha: float,
                     margin: float) -> GateFinding | None:
    cur_m, base_m = cur["metrics"].get(metric), base["metrics"].get(metric)
    if not cur_m or not base_m or cur_m.get("k") is None or base_m.get("k") is None:
        return None
    stopped = _stopped(cur) or _stopped(base)
    check = f"regression:{metric}"
    units = (cur.get("unit_trials") or 1, base.get("unit_trials") or 1)
    if metric in _SHARES or max(units) > 1:  # betting bounds on per-trial shares, or on each unit's mean of them
        if metric not in _PER_TRIAL:
            return GateFinding(name, check, True, f"{metric}: NOT TESTED, a campaign's trials come in units that "
                                                  "share their tasks (pass^k), and the report holds no per-trial "
                                                  f"value of {metric} to compare unit by unit", tested=False)
        shares = [_shares(c, metric, u) for c, u in ((cur, units[0]), (base, units[1]))]
        if shares[0] is None or shares[1] is None or not shares[0] or not shares[1]:
            return None
        cur_hi = betting_upper(shares[0], 1 - alpha / 2)
        base_lo = betting_lower(shares[1], 1 - alpha / 2)
        per = "per trial" if units == (1, 1) else f"per unit of trials sharing their tasks ({units[0]} and {units[1]})"
        return GateFinding(name, check, cur_hi >= base_lo - margin,
                           f"{metric} ({per}, {len(shares[0])} vs {len(shares[1])}): now <= {cur_hi:.4g}, "
                           f"baseline >= {base_lo:.4g} (anytime-valid betting bounds, alpha/2 = {alpha / 2:g} each"
                           f"{f', margin {margin:g}' if margin else ''})")
    k1, n1, k0, n0 = cur_m["k"], cur_m["n"], base_m["k"], base_m["n"]
    if n1 == 0 or n0 == 0:
        return None
    if not stopped and not margin:  # both ran every trial: the exact conditional test
        p = fisher_less_pvalue(k1, n1, k0, n0)
        return GateFinding(name, check, p >= alpha, f"{metric}: {k1}/{n1} now vs {k0}/{n0} baseline, one-sided "
                                                    f"Fisher p={p:.3g} (alpha {alpha:g})")
    cur_hi = mixture_rate_bounds(k1, n1, 1 - alpha / 2)[1]
    base_lo = mixture_rate_bounds(k0, n0, 1 - alpha / 2)[0]
    why = "a campaign stopped early: " if stopped else ""
    return GateFinding(name, check, cur_hi >= base_lo - margin,
                       f"{metric}: {k1}/{n1} now vs {k0}/{n0} baseline; {why}anytime-valid bounds now <= "
                       f"{cur_hi:.4g}, baseline >= {base_lo:.4g} (alpha/2 = {alpha / 2:g} each"
                       f"{f', margin {margin:g}' if margin else ''})")


def _shares(campaign: dict[str, Any], metric: str, unit: int = 1) -> list[float] | None:
    """Each trial's share of its chances (``unit`` 1), or each complete unit's mean of its trials' shares (the
    trials of a unit share their tasks: a unit is one independent value)."""
    records = campaign.get("records")
    if not records:
        return None
    read = _PER_TRIAL[metric]
    out: list[float] = []
    open_: list[float] = []
    for i, record in enumerate(records):
        successes, chances = read(record)
        if chances:
            open_.append(successes / chances)
        if (i + 1) % unit == 0:
            if open_:
                out.append(sum(open_) / len(open_))
            open_ = []
    return out


def _values(campaign: dict[str, Any], metric: str) -> list[float] | None:
    key = {"tokens_per_task": "tokens", "cost_usd_per_task": "cost_usd"}[metric]
    records = campaign.get("records")
    return None if not records else [float(r[key]) for r in records]


def _growth(name: str, metric: str, q: str, cur: dict[str, Any], base: dict[str, Any], alpha: float,
            max_growth: float) -> GateFinding | None:
    cur_v = (cur["metrics"].get(metric) or {}).get(q)
    base_v = (base["metrics"].get(metric) or {}).get(q)
    if cur_v is None or base_v is None:
        return None
    check = f"growth:{metric}.{q}"
    if _stopped(base):
        return GateFinding(name, check, True, f"{metric}.{q}: {cur_v:g} now vs {base_v:g} baseline: NOT TESTED, the "
                                              "baseline stopped early (its p95 is not a fixed-sample order statistic);"
                                              " make the baseline with early_stop: false and no spend cap it reaches "
                                              "to test growth", tested=False)
    units = (cur.get("unit_trials") or 1, base.get("unit_trials") or 1)
    if max(units) > 1:
        return GateFinding(name, check, True, f"{metric}.{q}: {cur_v:g} now vs {base_v:g} baseline: NOT TESTED, a "
                                              "campaign's trials come in units that share their tasks (pass^k), and "
                                              "this check's order statistics need independent trials", tested=False)
    base_values, cur_values = _values(base, metric), _values(cur, metric)
    if not base_values or not cur_values:
        return None
    level = float(q.removeprefix("p")) / 100
    n0, n1 = len(base_values), len(cur_values)
    # H0: the candidate's true p95 is at most (1 + growth) x the baseline's. The baseline's order statistic
    # at ``rank`` bounds its true p95 from above (but with probability <= alpha/2); above (1 + growth) x that
    # bound a candidate within its growth has at most 1 - level of its trials (tested at alpha/2): together,
    # a false growth with probability <= alpha whatever the two distributions' shapes and ties.
    rank = quantile_upper_rank(n0, level, 1 - alpha / 2)
    if rank is None:
        return GateFinding(name, check, True, f"{metric}.{q}: {cur_v:g} now vs {base_v:g} baseline: NOT TESTED, the "
                                              f"baseline's {n0} trial(s) cannot bound its {q} from above at "
                                              f"{1 - alpha / 2:g}; give the baseline more trials to test growth",
                           tested=False)
    bound = sorted(base_values)[rank - 1]
    limit = bound * (1 + max_growth)
    allowed = 1 - level
    above = sum(v > limit for v in cur_values)
    if _stopped(cur):
        lower = mixture_rate_bounds(above, n1, 1 - alpha / 2)[0]
        grew = lower > allowed
        how = f"anytime-valid lower bound {lower:.3g}"
    else:
        p = binom_sf(above - 1, n1, allowed) if above else 1.0  # P(Bin(n1, allowed) >= above)
        grew = p < alpha / 2
        how = f"exact binomial p={p:.3g}"
    return GateFinding(name, check, not grew,
                       f"{metric}.{q}: {cur_v:g} now vs {base_v:g} baseline; {above}/{n1} trials above {limit:g} "
                       f"(+{max_growth:.0%} over {bound:g}, the baseline's {rank}th of {n0} values: its {q} or above "
                       f"at {1 - alpha / 2:g}); a {q} within the growth leaves <= {allowed:.3g} of the trials above it "
                       f"({how}, alpha/2 = {alpha / 2:g} each)")


def markdown(findings: list[GateFinding]) -> str:
    """The gate's summary as a markdown table."""
    passed = all(f.ok for f in findings)
    lines = [f"## Agent reliability gate: {'PASS' if passed else 'FAIL'}", "",
             "| scenario | check | result | detail |", "|---|---|---|---|"]
    for f in findings:
        lines.append(f"| {f.scenario} | {f.check} | {'pass' if f.ok else '**FAIL**'} | {f.detail} |")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentops-gate", description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", help="JSON report(s) written by --agent-chaos-report")
    p.add_argument("--baseline", action="append", default=[], help="baseline report(s) to compare with")
    p.add_argument("--alpha", type=float, default=0.05, help="error rate of the regression test (default 0.05)")
    p.add_argument("--max-growth", type=float, default=0.2,
                   help="allowed relative growth of token/cost p95 over the baseline (default 0.2), tested by the "
                        "exceedances of (1 + growth) x the baseline's p95 among the new trials")
    p.add_argument("--margin", type=float, default=0.0,
                   help="allowed drop of a rate before it counts as a regression (default 0)")
    p.add_argument("--allow-inconclusive", action="store_true", help="let inconclusive verdicts pass")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="judge a report of an interrupted or incomplete run on what it holds (default: such a report "
                        "fails the gate)")
    p.add_argument("--markdown", nargs="?", const="", metavar="PATH",
                   help="also write the markdown summary to PATH, and append it to $GITHUB_STEP_SUMMARY when that "
                        "is set (the job summary of GitHub Actions)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gate; returns the exit code (0 pass, 1 fail, 2 usage error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        for what, paths in (("report", args.reports), ("baseline", args.baseline)):
            seen: dict[str, str] = {}
            for path in paths:  # (the same campaigns twice: read as a second campaign of each scenario)
                key = os.path.realpath(path)
                if key in seen:
                    raise GateUsageError(f"{path}: the same {what} is given twice ({seen[key]})")
                seen[key] = path
        if not 0 < args.alpha < 1:
            raise GateUsageError(f"--alpha={args.alpha} must be in (0, 1)")
        if not (math.isfinite(args.max_growth) and args.max_growth >= 0):
            raise GateUsageError(f"--max-growth={args.max_growth} must be a finite number >= 0")
        if not 0 <= args.margin < 1:
            raise GateUsageError(f"--margin={args.margin} must be in [0, 1)")
        problem = args.markdown and unwritable(args.markdown)
        if problem:
            raise GateUsageError(f"--markdown={args.markdown}: cannot write the markdown summary there: {problem}")
        current = _campaigns(args.reports)
        baseline = _campaigns(args.baseline) if args.baseline else None
        unfinished = [f for f in incomplete_runs(args.reports) if f.check == "finished"]
        compared = comparison_findings(args.reports)
        if not current and not unfinished and not compared:
            stops = [f"{path}: the run stopped early ({why}) before any campaign ran"
                     for path in args.reports if (why := (_read(path).get("session") or {}).get("stopped"))]
            why = "; ".join(stops) or "smoke and replay runs are not evidence"
            raise GateUsageError(f"the reports hold no campaign ({why})")
        if baseline is not None:
            missing = sorted(set(baseline) - set(current))
            if not set(baseline) & set(current):
                raise GateUsageError(f"the reports and the baseline share no scenario (reports: "
                                     f"{', '.join(sorted(current))}; baseline: {', '.join(sorted(baseline))})")
            if missing:
                raise GateUsageError(f"the reports lack the baseline's scenario(s) {', '.join(missing)}: a candidate "
                                     "must run every scenario of its baseline")
    except GateUsageError as exc:
        print(f"agentops-gate: error: {exc}", file=sys.stderr)
        return 2
    findings = evaluate_gate(current, baseline, alpha=args.alpha, max_growth=args.max_growth,
                             allow_inconclusive=args.allow_inconclusive, margin=args.margin)
    incomplete = incomplete_runs(args.reports)
    if args.allow_incomplete:  # not a report whose run never finished: it holds nothing of that run
        incomplete = [f if f.check == "finished" else
                      GateFinding(f.scenario, f.check, True, f.detail + " [--allow-incomplete]") for f in incomplete]
    findings = incomplete + compared + findings
    text = markdown(findings)
    print(text, end="")
    try:
        if args.markdown:
            Path(args.markdown).write_text(text, encoding="utf-8")
        if args.markdown is not None:
            _append_step_summary(text)
    except OSError as exc:
        print(f"agentops-gate: error: cannot write the markdown summary ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return 2
    return 0 if all(f.ok for f in findings) else 1


def unwritable(path: str) -> str | None:
    """Why a file could not be written at ``path`` (None when it can): the command lines check their output paths
    before they start, not once their work is done. The permissions first, then a real try, as ``os.access``
    cannot tell everything (run as root it says yes to any folder, /proc included): a new file is created and
    removed again, an existing one opened for appending (its text kept); devices and pipes are not opened."""
    target = Path(path)
    if target.is_dir():
        return "it is a directory; give the path of a file to write"
    if target.is_symlink() and not target.exists():
        return f"it is a symbolic link to {os.readlink(target)}, which does not exist"
    parent = target.parent
    if not parent.exists():
        return f"its directory {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if target.exists():  # (written in place: the file's own permission decides, not its directory's)
        if not os.access(target, os.W_OK):
            return "permission denied"
    elif not os.access(parent, os.W_OK | os.X_OK):
        return "permission denied"
    doing = "opening it for writing" if target.exists() else "creating it"
    try:
        if target.exists():
            if target.is_file():
                with open(target, "a", encoding="utf-8"):
                    pass
            return None
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:  # made meanwhile by another process: written over when the work is done
        return None
    except OSError as exc:
        return f"{doing} failed ({type(exc).__name__}: {exc.strerror or exc}); give the path of a file in a writable " \
               "directory"
    target.unlink(missing_ok=True)
    return None


def _append_step_summary(text: str) -> None:
    """Append to the file ``$GITHUB_STEP_SUMMARY`` names (GitHub Actions shows it on the job's page)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
