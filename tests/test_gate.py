"""The pre-canary gate: real report files, a real process, exit codes, and the regression test's error rate."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from pytest_agentops import run_campaign
from pytest_agentops.gate import main
from pytest_agentops.report.json_report import write_report
from pytest_agentops.stats import fisher_less_pvalue

from conftest import coin_scenario


def _report(tmp_path, name, p, **kw):
    result = run_campaign(coin_scenario(p, name="refund", expect={"completion_rate": ">= 0.80"}, **kw))
    return str(write_report(tmp_path / name, [result]))


def _gate(*args):
    proc = subprocess.run([sys.executable, "-m", "pytest_agentops", "gate", *args], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("outcomes", ["null", "absent"])
def test_a_campaign_without_expectations_is_judged_by_its_records_errors_when_it_has_no_outcomes(tmp_path, capsys,
                                                                                                outcomes):
    """A review: a campaign with no verdicts whose ``outcomes`` was null crashed the gate (AttributeError, exit 1:
    "fail"); one whose ``outcomes`` was left out passed, "no trial ended in an error", though every record said
    ``error``. Without ``outcomes`` its records' outcomes count."""
    import json

    result = run_campaign(coin_scenario(1.0, name="plain"))
    path = write_report(tmp_path / "r.json", [result])
    report = json.loads(path.read_text())
    campaign = report["campaigns"][0]
    assert campaign["verdicts"] == []
    if outcomes == "null":
        campaign["outcomes"] = None
    else:
        del campaign["outcomes"]
    for record in campaign["records"]:
        record["outcome"] = "error"
    path.write_text(json.dumps(report))
    assert main([str(path)]) == 1
    assert f"{len(campaign['records'])} of {campaign['trials']} trial(s) ended in an error" in capsys.readouterr().out


def test_a_campaign_its_spend_cap_stopped_is_tested_as_one_that_stopped_early(tmp_path, capsys):
    """A review: a campaign its spend cap stopped after 21 of 100 trials (where it stops depends on what its
    trials cost) said ``stopped_early: false``, and the gate tested it against its baseline with Fisher's
    fixed-sample test, as a full run. It is tested with the anytime-valid bounds, as an early stop is."""
    def spends(task, env):
        env.record_usage(input_tokens=1000, output_tokens=0, model="m")
        return "done"

    def campaign(cap):
        return run_campaign(coin_scenario(1.0, name="refund", agent=spends, trials=100, early_stop=False,
                                          expect={"completion_rate": ">= 0.5"}, max_campaign_tokens=cap))

    base = write_report(tmp_path / "base.json", [campaign(None)])
    capped = campaign(21_000)
    assert capped.n < 100 and not capped.stopped_early
    now = write_report(tmp_path / "now.json", [capped])
    main([str(now), "--baseline", str(base), "--allow-inconclusive"])
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines() if "regression:completion_rate" in x]
    assert "anytime-valid bounds" in line and "Fisher" not in line


def _capped_law(p: float, trials: int, cost_pass: int, cost_fail: int,
                cap: float) -> dict[tuple[int, int, bool], float]:
    """The exact law of (successes judged, trials judged, stopped by the cap) of a capped campaign of Bernoulli(p)
    trials run one at a time under the engine's launch rule (``engine/spend.py``): a trial that passes costs
    ``cost_pass``, one that fails ``cost_fail`` (what it costs depends on how it ends, so where the campaign stops
    does too); the next trial is launched while the spend so far and the costliest trial yet fit under ``cap`` (the
    first always), and a launched trial is judged (its cost is the agent's ``record_usage``, known once spent: a
    model call the harness meters can instead be refused, its trial cut); a campaign that ran every trial counts as
    stopped by the cap when one more would not have fitted."""
    out: dict[tuple[int, int, bool], float] = {}

    def add(key: tuple[int, int, bool], mass: float) -> None:
        out[key] = out.get(key, 0.0) + mass

    def costliest(passed: int, failed: int) -> int | None:
        return max([c for c, seen in ((cost_pass, passed), (cost_fail, failed)) if seen], default=None)

    running = {(0, 0): 1.0}  # (passed, failed) -> mass, the campaign still going
    for n in range(1, trials + 1):
        moved: dict[tuple[int, int], float] = {}
        for (s, f), m in running.items():
            spend, most = s * cost_pass + f * cost_fail, costliest(s, f)
            if most is not None and spend + most > cap:  # not launched: the campaign stops at n - 1
                add((s, n - 1, True), m)
                continue
            for (s2, f2), chance in (((s + 1, f), p), ((s, f + 1), 1 - p)):
                moved[s2, f2] = moved.get((s2, f2), 0.0) + m * chance
        running = {}
        for (s, f), m in moved.items():
            if n == trials:
                add((s, n, s * cost_pass + f * cost_fail + costliest(s, f) > cap), m)
            else:
                running[s, f] = m
    return out


@pytest.mark.parametrize("side", ["candidate", "baseline"])
@pytest.mark.parametrize(("p", "cost_pass", "cost_fail"), [(0.5, 1, 20), (0.5, 20, 1), (0.9, 1, 20), (0.9, 20, 1)])
def test_an_unchanged_agent_whose_spend_cap_stops_it_fails_the_rate_test_at_most_at_alpha(side, p, cost_pass,
                                                                                         cost_fail):
    """The gate's completion-rate test against a baseline when a spend cap may stop one side: Fisher's exact test
    when both ran every trial, the anytime-valid bounds when the cap stopped one (its error rate was not measured
    when that rule came in). Whether the cap stopped a side depends on what its trials cost, which here depends on
    how they ended (failures 20x dearer, or passes), so the test chosen depends on the outcome. Exactly, by a
    dynamic programme over the engine's launch rule one trial at a time (``_capped_law``; 100 trials a side, caps
    0.95-1.1x the full run's mean cost, where the cap stops 0-96% of campaigns): an unchanged agent is flagged at
    most at alpha (0.0384 at worst here). The programme's decision is checked against the gate's own on a spread
    of states. (More trials in flight make a capped campaign stop sooner: not modelled.)"""
    from pytest_agentops.gate import _rate_regression
    from pytest_agentops.stats.compare import mixture_rate_bounds

    alpha, trials = 0.05, 100
    full = scipy.stats.binom.pmf(np.arange(trials + 1), trials, p)
    bounds = functools.cache(lambda k, n: mixture_rate_bounds(k, n, 1 - alpha / 2))
    fisher = functools.cache(fisher_less_pvalue)

    def report(k: int, n: int, capped: bool) -> dict:
        return {"metrics": {"completion_rate": {"k": k, "n": n}}, "spend": {"stopped_by_cap": capped}}

    checked = 0
    for scale in (0.95, 1.0, 1.1):
        cap = scale * trials * (p * cost_pass + (1 - p) * cost_fail)
        flagged = 0.0
        for (k, n, capped), mass in _capped_law(p, trials, cost_pass, cost_fail, cap).items():
            for k_full in np.nonzero(full > 1e-14)[0].tolist():
                cur, base = ((k, n, capped), (k_full, trials, False)) if side == "candidate" else \
                    ((k_full, trials, False), (k, n, capped))
                if capped:
                    fails = bounds(*cur[:2])[1] < bounds(*base[:2])[0]
                else:
                    fails = fisher(cur[0], cur[1], base[0], base[1]) < alpha
                if checked < 400 and (k_full + k) % 7 == 0:  # (the gate's own decision, on a spread of states)
                    finding = _rate_regression("s", "completion_rate", report(*cur), report(*base), alpha, 0.0)
                    assert finding is not None and finding.ok is not fails, (cur, base)
                    checked += 1
                flagged += mass * full[k_full] if fails else 0.0
        assert flagged <= alpha, (scale, flagged)
    assert checked > 50


@pytest.mark.parametrize(("cost_pass", "cost_fail", "cap"), [(100, 2000, 36_000), (2000, 100, 60_000),
                                                           (100, 2000, 1_000)])
def test_the_dynamic_programmes_launch_rule_is_the_engines(cost_pass, cost_fail, cap):
    """``_capped_law``'s rule, replayed on a real campaign's outcomes (concurrency 1, each trial's tokens by how it
    ends): the same trials judged and the same "stopped by the cap" as the engine's."""
    def agent(task, env):
        passed = env.rng.random() < 0.7
        env.record_usage(input_tokens=cost_pass if passed else cost_fail, output_tokens=0, model="m")
        return "done" if passed else "no"

    def campaign(cap: int | None):
        return run_campaign(coin_scenario(0.7, name="capped", agent=agent, trials=50, early_stop=False,
                                          concurrency=1, max_campaign_tokens=cap))

    outcomes = [r.output == "done" for r in campaign(None).records]  # every trial's, as the capped run's (a seed each)
    # the rule of ``_capped_law`` on them
    spend, most, judged, stopped = 0, None, 0, False
    for passed in outcomes:
        if most is not None and spend + most > cap:  # not launched
            stopped = True
            break
        cost = cost_pass if passed else cost_fail
        spend, most, judged = spend + cost, max(most or 0, cost), judged + 1
    else:
        stopped = spend + most > cap
    capped = campaign(cap)
    assert (capped.n, capped.spend["stopped_by_cap"]) == (judged, stopped)
    assert [r.output == "done" for r in capped.records] == outcomes[:judged]


def test_a_report_given_twice_is_a_usage_error(tmp_path, capsys):
    """An outside review: ``--baseline r.json --baseline r.json`` said "the reports lack the baseline's scenario(s)
    ... #2" (read as a second campaign of each scenario)."""
    base = _report(tmp_path, "base.json", 0.97, early_stop=False)
    assert main([base, "--baseline", base, "--baseline", str(tmp_path / "." / "base.json")]) == 2
    assert "the same baseline is given twice" in capsys.readouterr().err
    assert main([base, base]) == 2
    assert "the same report is given twice" in capsys.readouterr().err


def test_gate_passes_a_good_run_and_fails_a_regression(tmp_path):
    base = _report(tmp_path, "base.json", 0.97, early_stop=False)
    same = _report(tmp_path, "same.json", 0.97, seed=2, early_stop=False)
    worse = _report(tmp_path, "worse.json", 0.88, seed=3, early_stop=False)
    code, out, _ = _gate(same, "--baseline", base)
    assert code == 0, out
    assert "Agent reliability gate: PASS" in out
    code, out, _ = _gate(worse, "--baseline", base, "--markdown", str(tmp_path / "gate.md"))
    assert code == 1
    assert "regression:completion_rate | **FAIL**" in out
    assert (tmp_path / "gate.md").read_text() == out


def test_gate_fails_failed_verdicts_and_usage_errors_exit_2(tmp_path):
    bad = _report(tmp_path, "bad.json", 0.5)
    assert main([bad]) == 1
    assert main([str(tmp_path / "missing.json")]) == 2
    (tmp_path / "junk.json").write_text(json.dumps({"hello": 1}))
    assert main([str(tmp_path / "junk.json")]) == 2
    assert main([bad, "--alpha", "3"]) == 2
    assert main([]) == 2
    code, _, err = _gate(str(tmp_path / "missing.json"))
    assert code == 2 and "no such report file" in err


@pytest.mark.parametrize(("verdict", "message"), [
    (1, r"campaigns\[0\]\.verdicts\[0\] must be an object, got int"),
    ({}, r"campaigns\[0\]\.verdicts\[0\]\.key must be a string, got NoneType"),
    ({"key": "completion_rate", "expression": ">= 0.9", "verdict": "passed"},
     r"\.verdict must be one of pass, fail, inconclusive, got 'passed'"),
    ({"key": "completion_rate", "expression": ">= 0.9", "verdict": "pass", "estimate": "0.9", "bound": None},
     r"\.estimate must be a number or null, got str"),
])
def test_a_malformed_verdict_is_a_usage_error_not_a_traceback(tmp_path, verdict, message):
    """A verdict that is not an object, or lacks its key, crashed the gate with a traceback and exit code 1 (the
    code of a failing gate)."""
    report = json.loads(Path(_report(tmp_path, "ok.json", 0.95)).read_text())
    report["campaigns"][0]["verdicts"] = [verdict]
    (tmp_path / "bad.json").write_text(json.dumps(report))
    code, _, err = _gate(str(tmp_path / "bad.json"))
    assert code == 2 and "Traceback" not in err
    assert re.search(message, err), err


@pytest.mark.parametrize("k1, n1, k2, n2", [(80, 100, 95, 100), (0, 10, 10, 10), (290, 300, 280, 300),
                                            (1, 3, 2, 2), (400, 400, 399, 400), (33, 60, 41, 59)])
def test_fisher_matches_scipy(k1, n1, k2, n2):
    ref = scipy.stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="less").pvalue
    assert fisher_less_pvalue(k1, n1, k2, n2) == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_regression_test_false_alarm_rate_at_equal_rates():
    """Two runs of the same agent (true rate 0.9, 300 trials each): flagged as a regression <= 5% of the time."""
    rng = np.random.default_rng(0)
    runs = 2000
    a, b = rng.binomial(300, 0.9, runs), rng.binomial(300, 0.9, runs)
    alarms = sum(fisher_less_pvalue(int(x), 300, int(y), 300) < 0.05 for x, y in zip(a, b, strict=True))
    assert alarms / runs <= 0.05 + 3 * (0.05 * 0.95 / runs) ** 0.5
    # and it has power: a drop from 0.9 to 0.8 is caught most of the time
    c = rng.binomial(300, 0.8, 200)
    caught = sum(fisher_less_pvalue(int(x), 300, int(y), 300) < 0.05 for x, y in zip(c, b[:200], strict=True))
    assert caught / 200 > 0.9


@pytest.mark.parametrize("growth", ["nan", "inf", "1e400", "-1"])
def test_a_max_growth_that_is_not_a_finite_number_at_least_0_is_a_usage_error(tmp_path, capsys, growth):
    """``--max-growth nan`` turned the growth check off ("0/400 trials above nan (+nan%)") and the gate passed."""
    base = _report(tmp_path, "base.json", 0.97, early_stop=False)
    assert main([base, "--baseline", base, f"--max-growth={growth}"]) == 2
    captured = capsys.readouterr()
    assert "--max-growth=" in captured.err and "must be a finite number >= 0" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(("where", "problem"), [("missing/gate.md", "its directory"), ("", "it is a directory"),
                                                ("file.txt/gate.md", "is not a directory")])
def test_an_unwritable_markdown_path_is_refused_before_the_gate_judges(tmp_path, capsys, where, problem):
    """An unwritable ``--markdown`` path was found only after the whole table was printed."""
    report = _report(tmp_path, "ok.json", 0.97)
    (tmp_path / "file.txt").write_text("x")
    target = str(tmp_path / where) if where else str(tmp_path)
    assert main([report, "--markdown", target]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before judging: no table
    assert captured.err.startswith(f"agentops-gate: error: --markdown={target}: cannot write the markdown summary")
    assert problem in captured.err


def test_the_early_check_asks_the_files_permission_for_an_existing_file_and_the_folders_for_a_new_one(
        tmp_path, monkeypatch):
    """The early check asked for write permission on the folder too, which writing the file in place does not
    need: a summary file a CI job pre-created in a read-only folder was refused (the permissions are stood in
    for: root, as on the CI machine, ignores them)."""
    from pytest_agentops.gate import unwritable

    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "summary.md").write_text("")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(folder) else real_access(path, mode))
    assert unwritable(str(folder / "summary.md")) is None
    assert unwritable(str(folder / "new.md")) == "permission denied"


def _set(path, value):
    """A change to a report: ``path`` (keys and indices) set to ``value``, or removed when ``value`` is ``...``."""
    def change(report):
        *parents, last = path
        for key in parents:
            report = report[key]
        if value is ...:
            del report[last]
        else:
            report[last] = value
    return change


SESSION = {"exit_status": 0, "interrupted": False, "expected": ["test_x.py::test_refund"], "missing": []}


@pytest.mark.parametrize(("change", "message"), [
    (_set(("session",), ...), r"'session' is missing, but the campaigns have node ids"),
    (_set(("campaigns", 0, "smoke"), "false"), r"campaigns\[0\]\.smoke must be true, false or null, got str 'false'"),
    (_set(("session", "missing"), "abc"), r"session\.missing must be a list of strings or null, got str 'abc'"),
    (_set(("session", "missing"), [1]), r"session\.missing must be a list of strings or null, got list"),
    (_set(("session", "exit_status"), "0"), r"session\.exit_status must be a whole number or null, got str '0'"),
    (_set(("session", "exit_status"), True), r"session\.exit_status must be a whole number or null, got bool True"),
    (_set(("session", "interrupted"), "no"), r"session\.interrupted must be true, false or null, got str 'no'"),
    (_set(("session", "running"), 0), r"session\.running must be true, false or null, got int 0"),
    (_set(("campaigns", 0, "verdicts", 0, "estimate"), float("nan")),
     r"campaigns\[0\]\.verdicts\[0\]\.estimate must be a number or null, got NaN"),
    (_set(("campaigns", 0, "verdicts", 0, "bound"), float("inf")),
     r"campaigns\[0\]\.verdicts\[0\]\.bound must be a number or null, got Infinity"),
    (_set(("campaigns", 0, "verdicts", 0, "trials_needed"), "30"),
     r"campaigns\[0\]\.verdicts\[0\]\.trials_needed must be a whole number >= 0 or null, got str '30'"),
    (_set(("campaigns", 0, "nodeid"), 5), r"campaigns\[0\]\.nodeid must be a string or null, got int 5"),
    (_set(("campaigns", 0, "xfail"), 5), r"campaigns\[0\]\.xfail must be a string or null, got int 5"),
    (_set(("campaigns", 0, "replay"), "0"), r"campaigns\[0\]\.replay must be a whole number >= 0 or null"),
    (_set(("campaigns", 0, "stopped_early"), "false"), r"campaigns\[0\]\.stopped_early must be true, false or null"),
    (_set(("campaigns", 0, "outcomes", "error"), "1"), r"campaigns\[0\]\.outcomes\.error must be a whole number >= 0"),
    (_set(("campaigns", 0, "outcomes", "eror"), 1), r"campaigns\[0\]\.outcomes\.eror: not an outcome \(did you mean "
                                                    r"'error'\?\); a trial's outcome is one of completed, failed, "),
    (_set(("campaigns", 0, "records", 0, "outcome"), "complete"),
     r"campaigns\[0\]\.records\[0\]\.outcome=str 'complete': not an outcome \(did you mean 'completed'\?\); a "
     r"trial's outcome is one of completed, "),
    (_set(("campaigns", 0, "metrics", "completion_rate", "k"), "two"),
     r"campaigns\[0\]\.metrics\.completion_rate\.k must be a whole number >= 0 or null, got str 'two'"),
    (_set(("campaigns", 0, "metrics", "completion_rate", "k"), 10 ** 6),
     r"campaigns\[0\]\.metrics\.completion_rate: k=1000000 of n=\d+: n must be a whole number >= k"),
    # (a huge n crashed the gate with an OverflowError traceback, exit 1: read as "fail", not as a usage error)
    (_set(("campaigns", 0, "metrics", "completion_rate", "n"), 10 ** 4000),
     r"campaigns\[0\]\.metrics\.completion_rate: n=int 1000000000\d*\.\.\. is more than the \d+ chance\(s\) its "
     r"records hold"),
    (_set(("campaigns", 0, "metrics", "completion_rate", "n"), 10 ** 6),
     r"campaigns\[0\]\.metrics\.completion_rate: n=int 1000000 is more than the \d+ chance\(s\) its records hold"),
    (_set(("campaigns", 0, "profile"), 3), r"campaigns\[0\]\.profile must be a string or null, got int 3"),
    (_set(("campaigns", 0, "metrics", "tokens_per_task"), [1]),
     r"campaigns\[0\]\.metrics\.tokens_per_task must be an object or null, got list"),
    (_set(("campaigns", 0, "metrics", "tokens_per_task", "p95"), float("nan")),
     r"campaigns\[0\]\.metrics\.tokens_per_task\.p95 must be a number or null, got NaN"),
    (_set(("campaigns", 0, "records", 0), 1), r"campaigns\[0\]\.records\[0\] must be an object, got int 1"),
    (_set(("campaigns", 0, "records", 1, "tokens"), "many"),
     r"campaigns\[0\]\.records\[1\]\.tokens must be a number >= 0, got str 'many'"),
    # (an integer too large for a float crashed the gate with an OverflowError traceback)
    (_set(("campaigns", 0, "records", 1, "tokens"), 10 ** 400),
     r"campaigns\[0\]\.records\[1\]\.tokens must be a number >= 0, got int 1000"),
    (_set(("campaigns", 0, "records", 0, "cost_usd"), ...),
     r"campaigns\[0\]\.records\[0\]\.cost_usd must be a number >= 0, got NoneType"),
    (_set(("campaigns", 0, "records", 0, "tokens"), -5), r"records\[0\]\.tokens must be a number >= 0, got int -5"),
    (_set(("campaigns", 0, "records", 0, "tool_failures"), 99),
     r"campaigns\[0\]\.records\[0\]: tool_failures=99 is more than tool_calls=\d+"),
    # (each dropped the test against the baseline without a word: a candidate at 0/59 passed)
    (_set(("campaigns", 0, "metrics", "completion_rate"), ...),
     r"campaigns\[0\]\.metrics\.completion_rate must be an object \(every campaign's report has it\), got nothing"),
    (_set(("campaigns", 0, "metrics", "completion_rate", "k"), None),
     r"campaigns\[0\]\.metrics\.completion_rate must have k and n \(every trial has the chance\), got k=NoneType"),
    (_set(("campaigns", 0, "records"), []), r"campaigns\[0\]\.records holds 0 record\(s\) for trials=\d+: a report "
                                            r"has one per trial"),
])
def test_a_wrongly_typed_report_field_is_a_usage_error_naming_the_file_and_the_field(tmp_path, capsys, change,
                                                                                       message):
    """Fields the gate reads were taken as they came: a report of a pytest run without ``session`` passed,
    ``"smoke": "false"`` dropped the campaign, ``"missing": "abc"`` was read as the tests a, b and c, a NaN
    estimate passed, ``"exit_status": "0"`` was "status 0 (an internal or usage error)"; a wrongly typed field of
    the records or metrics compared with a baseline crashed with a traceback."""
    report = json.loads(Path(_report(tmp_path, "ok.json", 0.95, trials=20)).read_text())
    report["session"] = dict(SESSION)
    report["campaigns"][0]["nodeid"] = "test_x.py::test_refund"
    (tmp_path / "good.json").write_text(json.dumps(report))
    assert main([str(tmp_path / "good.json"), "--baseline", str(tmp_path / "good.json")]) == 0  # as written: fine
    capsys.readouterr()
    change(report)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(report))  # (json.dumps writes NaN and Infinity as the gate would meet them)
    assert main([str(bad), "--baseline", str(tmp_path / "good.json")]) == 2
    assert main([str(tmp_path / "good.json"), "--baseline", str(bad)]) == 2  # a baseline is checked the same
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.startswith(f"agentops-gate: error: {bad}: "), captured.err
    assert re.search(message, captured.err), captured.err


@pytest.mark.parametrize(("edit", "message"), [
    (lambda text: text.replace('"verdict": "pass"', '"verdict": "fail", "verdict": "pass"', 1),
     "the key 'verdict' is given twice in one object"),
    (lambda text: "[" * 100_000 + "]" * 100_000, "nested deeper than Python's JSON reader goes"),
    (lambda text: text.replace('"trials": ', '"trials": ' + "9" * 5000 + ", \"x\": ", 1),
     "a number of more than 4300 digits: no field of a report holds one"),
])
def test_a_report_json_reads_only_in_its_own_way_is_a_usage_error(tmp_path, capsys, edit, message):
    """A key twice (``json`` kept the last: ``"verdict": "fail", "verdict": "pass"`` passed), nesting deeper than
    the reader goes (a ``RecursionError`` traceback, exit 1) and a 5,000-digit number (Python's own message)."""
    good = Path(_report(tmp_path, "ok.json", 0.95, trials=20))
    bad = tmp_path / "bad.json"
    bad.write_text(edit(good.read_text()))
    assert main([str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"agentops-gate: error: {bad}: {message}"), captured.err[:300]
    assert "Traceback" not in captured.err


def test_a_wrongly_typed_session_field_in_a_real_process(tmp_path):
    report = json.loads(Path(_report(tmp_path, "ok.json", 0.95, trials=20)).read_text())
    report["session"] = dict(SESSION, exit_status="0")
    (tmp_path / "bad.json").write_text(json.dumps(report))
    code, out, err = _gate(str(tmp_path / "bad.json"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err == (f"agentops-gate: error: {tmp_path / 'bad.json'}: session.exit_status must be a whole number or "
                   "null, got str '0'\n")


def test_a_report_written_outside_pytest_needs_no_session_and_a_schema_error_names_its_file_once(tmp_path, capsys):
    report = _report(tmp_path, "api.json", 0.97, trials=20)
    assert "session" not in json.loads(Path(report).read_text())
    assert main([report]) == 0  # (write_report through the API: no session, no node ids)
    (tmp_path / "other.json").write_text(json.dumps({"schema": "other"}))
    assert main([str(tmp_path / "other.json")]) == 2
    assert capsys.readouterr().err == f"agentops-gate: error: {tmp_path / 'other.json'}: not a pytest-agentops report\n"


# -- the p95 growth check keeps alpha whatever the shapes -----------------------------------------------------------
def _growth_flagged(base_values, cur_values, max_growth=0.2, alpha=0.05) -> bool:
    from pytest_agentops.gate import _growth

    def campaign(values):
        return {"metrics": {"tokens_per_task": {"p95": float(np.quantile(values, 0.95))}},
                "records": [{"tokens": float(v)} for v in values]}

    finding = _growth("s", "tokens_per_task", "p95", campaign(cur_values), campaign(base_values), alpha, max_growth)
    return not finding.ok


def _true_p95(sigma=0.4):
    return float(np.exp(7 + sigma * scipy.stats.norm.ppf(0.95)))


@pytest.mark.parametrize("case", ["ties-at-19.5%", "scaled-by-1.2"])
def test_a_p95_within_the_allowed_growth_is_flagged_at_most_at_alpha(case):
    """An outside review: 30% of the candidate's trials at exactly 1.195 x the baseline's true p95 (a growth of
    19.5%, within the allowed 20%) was flagged in 39% of runs at alpha 0.05: the check took the baseline's sample
    p95 as if it were its true one. Now the baseline's p95 is bounded from above (alpha/2) and the candidate's
    exceedances of 1.2 x that bound tested (alpha/2). 1,000 seeded pairs of 200-trial reports per case."""
    rng = np.random.default_rng(15)
    q_b = _true_p95()
    flagged = 0
    for _ in range(1000):
        base = rng.lognormal(7, 0.4, 200)
        if case == "ties-at-19.5%":
            cur = np.where(rng.random(200) < 0.3, 1.195 * q_b, rng.lognormal(6.5, 0.3, 200))
        else:  # the boundary of a scaled distribution: exactly +20%
            cur = 1.2 * rng.lognormal(7, 0.4, 200)
        flagged += _growth_flagged(base, cur)
    assert flagged / 1000 <= 0.05 + 3 * (0.05 * 0.95 / 1000) ** 0.5


def test_the_growth_check_still_flags_a_doubled_p95():
    rng = np.random.default_rng(16)
    flagged = sum(_growth_flagged(rng.lognormal(7, 0.4, 200), 2.0 * rng.lognormal(7, 0.4, 200)) for _ in range(200))
    assert flagged >= 190


def test_a_dangling_symlink_is_no_place_for_the_gate_summary(tmp_path, capsys):
    (tmp_path / "summary.md").symlink_to(tmp_path / "missing" / "summary.md")
    assert main([str(tmp_path / "never-read.json"), "--markdown", str(tmp_path / "summary.md")]) == 2
    assert "symbolic link" in capsys.readouterr().err


def test_an_unchanged_agent_fails_the_whole_gate_at_most_at_alpha_however_many_tests_it_runs():
    """Each test against the baseline ran at the full alpha: the same agent twice, a report of five scenarios
    with a completion and a resume rate each, failed the gate in 17% of pairs of reports (an outside review's
    Monte Carlo). The tests now share alpha. Seeded Monte Carlo through ``evaluate_gate``, the rates at 0.8 and
    0.7 on 200 trials (half of them crashed and restarted)."""
    import math

    from pytest_agentops.gate import evaluate_gate

    rng = np.random.default_rng(2026)
    records = [{"tokens": 100, "cost_usd": 0.001, "tool_calls": 0, "tool_failures": 0, "outcome": "completed"}]

    def report() -> dict:
        out = {}
        for s in range(5):
            crashed = int(rng.binomial(200, 0.5))
            out[f"s{s}"] = {"scenario": f"s{s}", "verdicts": [], "records": records, "stopped_early": False,
                            "trials": 200, "metrics": {
                                "completion_rate": {"k": int(rng.binomial(200, 0.8)), "n": 200},
                                "resume_success_rate": {"k": int(rng.binomial(crashed, 0.7)), "n": crashed}}}
        return out

    runs = 600
    failed = sum(any(not f.ok for f in evaluate_gate(report(), report(), alpha=0.05)) for _ in range(runs))
    assert failed / runs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)
    tests = [f for f in evaluate_gate(report(), report(), alpha=0.05) if f.check.startswith("regression")]
    assert len(tests) == 10 and all("alpha 0.005" in f.detail for f in tests)  # 0.05 shared by the ten tests


def test_a_test_against_the_baseline_that_cannot_be_made_takes_no_share_of_alpha():
    """The share of each test was alpha over every finding against the baseline, NOT TESTED ones too (0.05/4
    where two of the four were NOT TESTED); and a campaign interrupted before its first trial ended (no
    completion rate) made the whole report a usage error."""
    from pytest_agentops.gate import evaluate_gate

    records = [{"tokens": 100, "cost_usd": 0.001, "tool_calls": 1, "tool_failures": 0, "outcome": "completed"}] * 80
    campaign = {"scenario": "s", "verdicts": [], "records": records, "stopped_early": True, "trials": 80,
                "metrics": {"completion_rate": {"k": 80, "n": 80}, "tool_success_rate": {"k": 80, "n": 80},
                            "tokens_per_task": {"p95": 100}, "cost_usd_per_task": {"p95": 0.001}}}
    findings = [f for f in evaluate_gate({"s": campaign}, {"s": campaign}, alpha=0.05)
                if f.check.startswith(("regression", "growth"))]
    tested = [f for f in findings if f.tested]
    assert len(tested) == 2 and len(findings) == 4  # the baseline stopped early: its p95 growth is not tested
    assert all("alpha/2 = 0.0125 each" in f.detail for f in tested)  # 0.05 shared by the two tests made



def test_the_report_of_a_run_interrupted_before_a_campaigns_first_trial_ended_is_read(tmp_path, capsys):
    """Its campaign has 0 trials and no completion rate: the gate refused the whole report ("must be an object
    (every campaign's report has it)") though ``--allow-incomplete`` asks it to judge the rest."""
    from pytest_agentops import Scenario
    from pytest_agentops.gate import main
    from pytest_agentops.precedence import resolve_run
    from pytest_agentops.report.json_report import write_report
    from pytest_agentops.result import CampaignResult

    scenario = Scenario(name="slow", agent=lambda task, env: "ok", trials=5, seed=1,
                        expect={"completion_rate": ">= 0.5"})
    interrupted = CampaignResult.build(scenario, resolve_run(scenario, ()), [], interrupted=True)
    path = write_report(tmp_path / "r.json", [interrupted])
    assert json.loads(path.read_text())["campaigns"][0]["trials"] == 0
    code = main([str(path), "--allow-incomplete", "--allow-inconclusive"])
    assert code in (0, 1) and "must be" not in capsys.readouterr().err


def test_the_gate_judges_the_paired_comparisons_a_report_holds(pytester):
    """``agent_chaos.compare`` that found a regression: its test was listed as one that never reported a campaign,
    and the gate passed the report with ``--allow-incomplete`` (a report of comparisons alone was "no campaign")."""
    from pytest_agentops.gate import main

    pytester.makepyfile(test_cmp='''
        from pytest_agentops import Faults, Scenario, ToolError, tool

        @tool
        def act(world) -> str:
            return "ok"

        def careful(task, env):
            for _ in range(3):
                try:
                    return env.tools["act"]()
                except ToolError:
                    pass
            return "no"

        def hasty(task, env):
            try:
                return env.tools["act"]()
            except ToolError:
                return "no"

        BASE = Scenario(name="base", agent=careful, tools=[act], check=lambda w, o: o == "ok",
                        faults=Faults.profile("high"), trials=300, seed=5, expect={"completion_rate": ">= 0.8"})

        def test_regress(agent_chaos):
            agent_chaos.compare(BASE, BASE.replace(name="cand", agent=hasty)).check()

        def test_base(agent_chaos):
            agent_chaos.run(BASE).check()
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--agent-chaos", "--agent-chaos-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    report = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    assert report["session"]["missing"] == []
    assert main([str(pytester.path / "r.json"), "--allow-incomplete"]) == 1
    report["campaigns"] = []  # (comparisons alone are evidence too)
    (pytester.path / "only.json").write_text(json.dumps(report), encoding="utf-8")
    assert main([str(pytester.path / "only.json")]) == 1


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["plain", "xdist"])
def test_a_run_stopped_by_x_is_said_to_have_stopped_not_crashed(pytester, workers):
    """Under ``-x`` the gate blamed "crashed worker, interrupt or error" for the tests after the failure, and
    under xdist (which ends such a run as interrupted) said "the run was interrupted (Ctrl-C)"."""
    pytester.makepyfile(test_x="""
        from pytest_agentops import Scenario

        def test_a(agent_chaos):
            assert False

        def test_b(agent_chaos):
            agent_chaos.run(Scenario(name="b", agent=lambda task, env: "ok", trials=3, seed=1)).check()
    """)
    pytester.runpytest("-p", "no:cacheprovider", "-x", "--agent-chaos", "--agent-chaos-report=r.json", *workers)
    session = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["session"]
    assert session["stopped"] == "stopping after 1 failures" and session["interrupted"] is False
    code, out, err = _gate(str(pytester.path / "r.json"), "--allow-inconclusive")
    assert code != 0, out
    assert "the run stopped early" in out + err and "stopping after 1 failures" in out + err
    assert "Ctrl-C" not in out + err and "crashed worker" not in out + err
    if not workers:  # (the failure came first: no campaign ran, a usage error that says why)
        assert code == 2 and "the run stopped early (stopping after 1 failures) before any campaign ran" in err, err


def test_a_run_whose_last_test_failed_under_x_ran_every_campaign_and_passes_the_gate(pytester):
    """A review of the first version: pytest says it stops at the last failure too, with nothing left to run; the
    gate failed a run that had every campaign."""
    pytester.makepyfile(test_x="""
        from pytest_agentops import Scenario

        def test_b(agent_chaos):
            agent_chaos.run(Scenario(name="b", agent=lambda task, env: "ok", trials=3, seed=1)).check()

        def test_z():
            assert False
    """)
    pytester.runpytest("-p", "no:cacheprovider", "-x", "--agent-chaos", "--agent-chaos-report=r.json")
    session = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["session"]
    assert session["stopped"] == "stopping after 1 failures" and session["missing"] == []
    code, out, err = _gate(str(pytester.path / "r.json"), "--allow-inconclusive")
    assert code == 0, out + err
    # (only xdist's status 2 after a stop is forgiven: a review found an internal error, 3, passing with it)
    report = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    report["session"]["exit_status"] = 3
    (pytester.path / "r3.json").write_text(json.dumps(report), encoding="utf-8")
    code, out, err = _gate(str(pytester.path / "r3.json"), "--allow-inconclusive")
    assert code == 1 and "pytest exited with status 3" in out, out + err


def test_a_baseline_run_under_another_fault_profile_is_not_compared_and_fails_the_gate(tmp_path):
    """A candidate run under ``--agent-chaos-profile=none`` passed against a baseline run under ``high``: the
    gate never read the profile, and an agent 38 points worse passed (an outside review)."""
    base = json.loads(Path(_report(tmp_path, "base.json", 0.97, early_stop=False)).read_text())
    base["campaigns"][0]["profile"] = "high"
    (tmp_path / "base.json").write_text(json.dumps(base))
    now = _report(tmp_path, "now.json", 0.97, seed=2, early_stop=False)
    code, out, _ = _gate(now, "--baseline", str(tmp_path / "base.json"))
    assert code == 1, out
    assert "baseline:profile | **FAIL** | ran under fault profile 'mid', its baseline under 'high'" in out
    assert "regression:" not in out  # (not compared: what it would measure is the profiles)
