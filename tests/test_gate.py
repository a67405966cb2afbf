"""The pre-canary gate: real report files, a real process, exit codes, and the regression test's error rate."""

from __future__ import annotations

import json
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
