"""Per-trial verdicts when trials share their tasks (``pass^k`` groups): the unit of k trials is the independent
value, and the stated error rates hold with failures clustered by task. A task list is drawn from, so its order
(the hardest tasks first) decides nothing.

The rule before this judged such trials one by one as independent: with 10% of the generated tasks impossible
(a true completion rate of exactly 0.90), ``completion_rate >= 0.90`` failed in 33% of campaigns (exact, an
outside review's dynamic programme) against a stated 5%. The error rates here are checked by seeded Monte
Carlo at the boundary, with the failures clustered, and with the hardest task first.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_agentops import Faults, Scenario, run_campaign
from pytest_agentops.expect import Expectation
from pytest_agentops.judge import ClusteredJudge, judge
from pytest_agentops.records import TrialRecord

CAMPAIGNS = 250


def _campaign(exp: Expectation, units: list[list[str]], unit_trials: int, *, sequential: bool = True) -> str:
    """The verdict of a judge fed trials whose outcomes come unit by unit."""
    j = judge(exp, max_trials=sum(map(len, units)), confidence=0.95, sequential=sequential, unit_trials=unit_trials)
    assert isinstance(j, ClusteredJudge)
    i = 0
    for unit in units:
        for outcome in unit:
            j.add(TrialRecord("x", i, 0, outcome))
            i += 1
        if j.decided:
            break
    return j.decision(complete=True)  # (the decision alone: no bounds, no planning)


def _ceiling(rate: float, n: int = CAMPAIGNS) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / n)  # the stated rate plus three standard errors


def _generated(rng: np.random.Generator, p_task: list[float], weights: list[float], k: int, units: int
               ) -> list[list[str]]:
    """``units`` groups of k trials; each group's task drawn by ``weights``, its trials completed with the
    task's probability."""
    out = []
    for _ in range(units):
        p = p_task[int(rng.choice(len(p_task), p=weights))]
        out.append(["completed" if rng.random() < p else "failed" for _ in range(k)])
    return out


@pytest.mark.parametrize(("p_task", "weights", "k"), [
    ([0.0, 1.0], [0.1, 0.9], 3),  # 10% of the tasks impossible, the rest always solved: exactly 0.90
    ([0.8, 1.0], [0.5, 0.5], 5),  # half the tasks at 0.8, half at 1.0
    ([0.5, 0.9, 1.0], [0.2, 0.2, 0.6], 3),  # mixed difficulty: 0.1 + 0.18 + 0.6 = 0.88
], ids=["impossible-tasks", "two-levels", "mixed"])
def test_a_rate_at_its_threshold_is_failed_at_most_at_the_stated_rate_when_failures_cluster(p_task, weights, k):
    truth = sum(p * w for p, w in zip(p_task, weights, strict=True))
    exp = Expectation.parse("completion_rate", f">= {round(truth, 10)}")  # the boundary: the expectation just holds
    rng = np.random.default_rng(2026)
    fails = sum(_campaign(exp, _generated(rng, p_task, weights, k, 400 // k), k) == "fail" for _ in range(CAMPAIGNS))
    assert fails / CAMPAIGNS <= _ceiling(0.05)


def test_the_one_look_rule_keeps_its_rate_too():
    exp = Expectation.parse("completion_rate", ">= 0.9")
    rng = np.random.default_rng(7)
    fails = sum(_campaign(exp, _generated(rng, [0.0, 1.0], [0.1, 0.9], 3, 133), 3, sequential=False) == "fail"
                for _ in range(CAMPAIGNS))
    assert fails / CAMPAIGNS <= _ceiling(0.05)


def test_units_whose_hard_trials_come_first_keep_the_rate():
    """Units of 15 trials, the first 3 of each solved half the time and the rest always: exactly 0.90. Judged
    trial by trial the hard trials came first in every unit (the old rule's exact false fail: 0.127); judged a
    unit at a time the units are alike."""
    exp = Expectation.parse("completion_rate", ">= 0.9")
    rng = np.random.default_rng(5)

    def turn() -> list[str]:
        hard = ["completed" if rng.random() < 0.5 else "failed" for _ in range(3)]
        return hard + ["completed"] * 12

    fails = sum(_campaign(exp, [turn() for _ in range(26)], 15) == "fail" for _ in range(CAMPAIGNS))
    assert fails / CAMPAIGNS <= _ceiling(0.05)


def _list_campaign(p_tasks: list[float], expect: dict[str, str], trials: int, seed: int = 1) -> Scenario:
    """A campaign over the task list ``t0, t1, ...`` in turn, task i solved with probability ``p_tasks[i]``."""
    def agent(task, env):
        return "done" if env.rng.random() < p_tasks[int(task[1:])] else "no"

    return Scenario(name="in-turn", agent=agent, task=[f"t{i}" for i in range(len(p_tasks))], trials=trials,
                    check=lambda w, out: out == "done", faults=Faults.none(), seed=seed, expect=expect)


def test_a_task_list_is_drawn_from_so_its_order_cannot_decide_a_verdict():
    """Taken in turn and judged trial by trial, a list with its 3 impossible tasks first (of 30: a share of
    exactly 0.90) failed ``>= 0.9`` at the third trial in every campaign, and 40 always-solved tasks listed before
    60 solved half the time (0.70) passed ``>= 0.9`` at trial 34 in every campaign (an outside review, exact).
    Each trial (each pass^k group) now draws its task: the trials are independent and alike, and the rule's
    exact rates hold (checked in ``test_sequential_rule.py``). Here: 12 campaigns at the threshold fail about as
    often as the stated 5% (4 or more of 12 has probability 0.0022), and a list well below never passes."""
    at_threshold = [run_campaign(_list_campaign([0.0] * 3 + [1.0] * 27, {"completion_rate": ">= 0.9"}, 400,
                                                seed=seed)).verdicts[0] for seed in range(12)]
    assert sum(v.verdict == "fail" for v in at_threshold) <= 3
    assert all(v.counting_unit == "trial" for v in at_threshold)
    below = [run_campaign(_list_campaign([1.0] * 40 + [0.5] * 60, {"completion_rate": ">= 0.9"}, 400,
                                         seed=seed)).verdicts[0].verdict for seed in range(5)]
    assert "pass" not in below


def test_the_draws_from_a_task_list_are_uniform_and_do_not_follow_the_position():
    """Over 30,000 groups of a 3-task list, each task is drawn a third of the time (within 1.5 points), and the
    task of a group does not follow its place in a turn (``index mod 3``)."""
    scenario = _list_campaign([1.0, 1.0, 1.0], {"pass^2": ">= 0.5"}, 60)
    tasks = [scenario.task_for(2 * g, 11) for g in range(30000)]
    assert all(scenario.task_for(2 * g + 1, 11) == tasks[g] for g in range(0, 30000, 997))  # (a group: one task)
    for name in ("t0", "t1", "t2"):
        assert abs(tasks.count(name) / 30000 - 1 / 3) < 0.015
        in_place = [t for g, t in enumerate(tasks) if g % 3 == int(name[1:])]
        assert abs(in_place.count(name) / len(in_place) - 1 / 3) < 0.02
    assert scenario.unit_trials == 2  # a pass^k group is the unit, as for a generator


def test_a_clustered_rate_still_decides_far_from_its_threshold():
    """Power: 400 trials in groups of 3 decide an agent at 0.99 (pass) and one at 0.6 (fail) nearly always."""
    exp = Expectation.parse("completion_rate", ">= 0.9")
    rng = np.random.default_rng(3)
    good = [_campaign(exp, _generated(rng, [0.97, 1.0], [0.3, 0.7], 3, 133), 3) for _ in range(50)]
    bad = [_campaign(exp, _generated(rng, [0.0, 1.0], [0.4, 0.6], 3, 133), 3) for _ in range(50)]
    assert good.count("pass") >= 45 and bad.count("fail") >= 45


def test_a_quantile_over_clustered_trials_keeps_its_rate():
    """``tokens_per_task.p90 <= T`` with the heavy tasks taking every trial of their group over T: the share of
    trials within T is exactly 0.90, at the boundary."""
    exp = Expectation.parse("tokens_per_task.p90", "<= 1000")

    def group(rng):
        tokens = 2000 if rng.random() < 0.1 else 500
        return [{"input_tokens": tokens}] * 3

    assert _sequential_fails(exp, group, np.random.default_rng(11)) / CAMPAIGNS <= _ceiling(0.05)


def _sequential_fails(exp: Expectation, group, rng: np.random.Generator, groups: int = 133, k: int = 3) -> int:
    """How many of ``CAMPAIGNS`` sequential campaigns fail ``exp``, each of ``groups`` units of ``k`` completed
    trials whose fields ``group(rng)`` gives (a task sets its whole group's)."""
    fails = 0
    for _ in range(CAMPAIGNS):
        j = judge(exp, max_trials=groups * k, confidence=0.95, sequential=True, unit_trials=k)
        for g in range(groups):
            for t, fields in enumerate(group(rng)):
                j.add(TrialRecord("x", k * g + t, 0, "completed", **fields))
            if j.decided:
                break
        fails += j.decision(complete=True) == "fail"
    return fails


# -- as users meet it: the scenario says its unit, the verdict names it ------------------------------------------


def _agent(task, env):
    return "done" if task != "impossible" else "no"


def _scenario(task, expect, trials=60):
    return Scenario(name="units", agent=_agent, task=task, check=lambda w, out: out == "done", faults=Faults.none(),
                    trials=trials, seed=3, early_stop=False, expect=expect)


def test_the_unit_follows_the_tasks():
    generated = _scenario(lambda rng: "impossible" if rng.random() < 0.1 else "easy", {"pass^3": ">= 0.5"})
    assert generated.unit_trials == 3
    assert _scenario(["a", "b"], {"pass^2": ">= 0.5"}).unit_trials == 2  # a group draws its task, as above
    assert _scenario("one task", {"pass^3": ">= 0.5"}).unit_trials == 1  # one task: the trials are alike
    assert _scenario(["a", "a"], {"pass^3": ">= 0.5"}).unit_trials == 1
    assert _scenario(["a", "b"], {"completion_rate": ">= 0.5"}).unit_trials == 1  # drawn: alike, independent


def test_a_campaign_with_pass_k_judges_its_per_trial_expectations_unit_by_unit():
    scenario = _scenario(lambda rng: "impossible" if rng.random() < 0.1 else "easy",
                         {"pass^3": ">= 0.5", "completion_rate": ">= 0.5", "unconfirmed_destructive_calls": "== 0",
                          "tokens_per_task.p95": "<= 100"})
    result = run_campaign(scenario)
    v = {x.key: x for x in result.verdicts}
    rate = v["completion_rate"]
    assert rate.counting_unit == "unit of 3 trials" and rate.method == "betting" and rate.n == 20
    assert "units of 3 trials that share their tasks" in rate.rule
    assert "n=20 units of 3 trials" in rate.describe()
    assert rate.estimate == pytest.approx(sum(r.outcome == "completed" for r in result.records) / 60)
    assert v["pass^3"].counting_unit == "pass^3 group"  # its own groups, as before
    assert v["tokens_per_task.p95"].counting_unit == "unit of 3 trials"
    count = v["unconfirmed_destructive_calls"]
    assert count.verdict == "pass" and count.n == 0  # no trial had a destructive call to make
    plain = run_campaign(_scenario("easy", {"completion_rate": ">= 0.5"}))
    assert plain.verdicts[0].counting_unit == "trial" and plain.verdicts[0].method != "betting"


def test_a_zero_tolerance_bound_counts_units_not_trials():
    """Trials of one task may all make the same violation: the bound 1 - alpha^(1/n) counts the units."""
    exp = Expectation.parse("unconfirmed_destructive_calls", "== 0")
    j = judge(exp, max_trials=9, confidence=0.95, sequential=True, unit_trials=3)
    j.add_all([TrialRecord("x", i, 0, "completed", destructive_attempts=1) for i in range(9)])
    v = j.verdict(complete=True)
    assert v.verdict == "pass" and v.n == 3 and v.counting_unit == "unit of 3 trials"
    assert v.bound == pytest.approx(1 - 0.05 ** (1 / 3)) and "over 3 units of 3 trials with the chance" in v.note


# -- paired comparisons (agentops-compare) on trials that share their tasks -------------------------------------------
def _compare(unit, rng, worse_on_b_tasks=True, k=5, pairs=400):
    """Did the pair-by-pair comparison find a regression? Tasks A and B, k pairs per task in a row: the candidate
    worse on A (0.7 vs 1.0, 30% more tokens), better on B (or, ``worse_on_b_tasks=False``: worse on both)."""
    from pytest_agentops.engine.compare import _Paired, feed_pair
    from pytest_agentops.stats.paired import holm

    tests = [_Paired(m, pairs, 0.05, 0.2, unit) for m in ("completion_rate", "tokens_per_task")]
    for _ in range(pairs // k):
        on_a = rng.random() < 0.5
        (pb, pc), (tb, tc) = ((1.0, 0.7), (1000, 1300)) if on_a or not worse_on_b_tasks else ((0.7, 1.0), (1300, 1000))
        for _ in range(k):
            b = TrialRecord("b", 0, 0, "completed" if rng.random() < pb else "failed",
                            input_tokens=int(tb * rng.lognormal(0, 0.05)))
            c = TrialRecord("c", 0, 0, "completed" if rng.random() < pc else "failed",
                            input_tokens=int(tc * rng.lognormal(0, 0.05)))
            if feed_pair(tests, b, c, 0.05):
                return any(holm([t.regression.p_value for t in tests], 0.05))
    return any(holm([t.final_p(exact=False)[0] for t in tests], 0.05))


def test_a_comparison_of_pairs_that_share_their_tasks_keeps_alpha():
    """A candidate worse on half the tasks and better on the other half, equal on average (the boundary of "not
    worse"): pair by pair (unit 1), discordant pairs came a task at a time and 47% of comparisons found a
    regression; a unit of 5 pairs at a time, at most alpha."""
    rng = np.random.default_rng(21)
    found = sum(_compare(5, rng) for _ in range(CAMPAIGNS))
    assert found / CAMPAIGNS <= _ceiling(0.05)
    worse = sum(_compare(5, rng, worse_on_b_tasks=False) for _ in range(50))
    assert worse >= 48  # and a candidate worse on every task is still found


def test_compare_campaigns_uses_the_scenarios_unit():
    from pytest_agentops.engine.compare import compare_campaigns

    generated = _scenario(lambda rng: "impossible" if rng.random() < 0.1 else "easy", {"pass^3": ">= 0.5"})
    result = compare_campaigns(generated, generated, trials=30)
    assert all("units of 3 pairs that share their tasks" in f.method for f in result.findings)
    plain = compare_campaigns(_scenario("easy", {}), _scenario("easy", {}), trials=30)
    assert not any("units of" in f.method for f in plain.findings)


def test_a_comparison_over_a_task_list_draws_the_same_task_for_both_of_a_pair():
    """Baseline solving the first half of a 20-task list and candidate the second half, equal on average: taken
    in turn the discordant pairs came a task at a time, in list order, and every comparison called a regression
    (5 of 5, an outside review). Drawn, both of a pair get the same task and the pairs are alike."""
    from pytest_agentops.engine.compare import compare_campaigns

    def solves(first_half: bool):
        def agent(task, env):
            return "done" if (int(task[1:]) < 10) == first_half else "no"
        return Scenario(name="half", agent=agent, task=[f"t{i}" for i in range(20)], trials=200, seed=5,
                        check=lambda w, out: out == "done", faults=Faults.none())

    result = compare_campaigns(solves(True), solves(False))
    assert not result.regressions and not any("units of" in f.method for f in result.findings)
    assert [r.output for r in result.baseline_records] == ["no" if r.output == "done" else "done"
                                                           for r in result.candidate_records]  # (same tasks)


# -- the gate on reports of such campaigns --------------------------------------------------------------------------
def _report_campaign(rng, unit, *, groups=133, k=3, impossible=0.1):
    records = []
    for _ in range(groups):
        outcome = "failed" if rng.random() < impossible else "completed"
        records += [{"outcome": outcome, "tokens": 100, "cost_usd": 0.0, "tool_calls": 0, "tool_failures": 0}] * k
    done = sum(r["outcome"] == "completed" for r in records)
    out = {"metrics": {"completion_rate": {"k": done, "n": len(records)}}, "records": records, "stopped_early": False}
    return {**out, "unit_trials": unit} if unit > 1 else out


def _gate_regression(cur, base) -> bool:
    from pytest_agentops.gate import _rate_regression

    return not _rate_regression("s", "completion_rate", cur, base, 0.05, 0.0).ok


def test_the_gate_compares_clustered_campaigns_unit_by_unit():
    """The same agent twice, 10% of its tasks impossible, 3 trials per task: trial by trial (Fisher) the gate
    called a regression far more often than alpha; by the reports' ``unit_trials``, at most alpha."""
    rng = np.random.default_rng(33)
    by_unit = sum(_gate_regression(_report_campaign(rng, 3), _report_campaign(rng, 3)) for _ in range(CAMPAIGNS))
    assert by_unit / CAMPAIGNS <= _ceiling(0.05)
    worse = sum(_gate_regression(_report_campaign(rng, 3, impossible=0.4), _report_campaign(rng, 3))
                for _ in range(50))
    assert worse >= 45  # a candidate failing 40% of its tasks against 10% is still caught


def test_a_report_says_its_unit_and_the_gate_reads_it(tmp_path):
    from pytest_agentops.report.json_report import write_report

    scenario = _scenario(lambda rng: "impossible" if rng.random() < 0.1 else "easy",
                         {"pass^3": ">= 0.5", "completion_rate": ">= 0.5"})
    result = run_campaign(scenario)
    campaign = json.loads(write_report(tmp_path / "r.json", [result]).read_text())["campaigns"][0]
    assert campaign["unit_trials"] == 3
    plain = json.loads(write_report(tmp_path / "p.json", [run_campaign(_scenario("easy", {}))]).read_text())
    assert "unit_trials" not in plain["campaigns"][0]  # (reports of other campaigns as they were)


def _chances_vary(exp, rng, p_x, p_y, units=400):
    """Units of 3 trials: task X gives one trial of three the chance (an event with probability ``p_x``), task
    Y all three (each an event with probability ``p_y``): the rate over trials with the chance is
    (p_x + 3 p_y) / 4."""
    j = judge(exp, max_trials=3 * units, confidence=0.95, sequential=True, unit_trials=3)
    i = 0
    for _ in range(units):
        if rng.random() < 0.5:
            chances = [True, False, False]
            events = [rng.random() < p_x, False, False]
        else:
            chances = [True] * 3
            events = [rng.random() < p_y for _ in range(3)]
        for chance, event in zip(chances, events, strict=True):
            j.add(TrialRecord("x", i, 0, "completed", destructive_attempts=int(chance), blocked_calls=int(event)))
            i += 1
        if j.decided:
            break
    return j.decision(complete=True)


def test_a_rate_whose_trials_do_not_all_have_the_chance_is_judged_over_the_chances():
    """An outside review: each unit counted as one share whatever its chances, so a per-chance rate of 0.25
    passed '>= 0.40' in 89% of campaigns. The unit's linear statistic S - m C keeps the per-chance rate."""
    exp = Expectation.parse("blocked_destructive_rate", ">= 0.40")
    rng = np.random.default_rng(41)
    false_pass = sum(_chances_vary(exp, rng, 1.0, 0.0) == "pass" for _ in range(100))  # rate 0.25
    assert false_pass <= 5
    at_threshold = [_chances_vary(exp, rng, 1.0, 0.2) for _ in range(CAMPAIGNS)]  # rate exactly 0.40
    assert at_threshold.count("fail") / CAMPAIGNS <= _ceiling(0.05)


@pytest.mark.parametrize(("key", "expression", "outcomes", "decided"), [
    ("completion_rate", ">= 1", ["completed", "completed", "failed"], "fail"),  # a failure disproves it
    ("completion_rate", "> 0", ["failed", "completed", "failed"], "pass"),  # a success proves it
    ("escalation_rate", "<= 0", ["completed", "escalated", "completed"], "fail"),
])
def test_a_threshold_at_0_or_1_is_decided_by_the_facts_that_settle_it(key, expression, outcomes, decided):
    """No bet can be placed at a share of 0 or 1: such an expectation was never decided with units."""
    j = judge(Expectation.parse(key, expression), max_trials=300, confidence=0.95, sequential=True, unit_trials=3)
    for i, outcome in enumerate(outcomes):
        j.add(TrialRecord("x", i, 0, outcome))
    assert j.state == decided and j.decided_at == 1


def test_the_gate_leaves_the_p95_growth_of_clustered_campaigns_untested_and_reads_outcomes_strictly(tmp_path,
                                                                                                     capsys):
    """Its order statistics need independent trials (a second review: 16-20% false alarms at units of 10-20);
    and a record without its outcome is a usage error, not a failed trial."""
    from pytest_agentops.gate import _growth, main

    rng = np.random.default_rng(1)
    cur, base = _report_campaign(rng, 3), _report_campaign(rng, 3)
    for c in (cur, base):
        c["metrics"]["tokens_per_task"] = {"p95": 100.0}
    finding = _growth("s", "tokens_per_task", "p95", cur, base, 0.05, 0.2)
    assert finding.ok and "NOT TESTED" in finding.detail and "units that share their tasks" in finding.detail
    report = {"schema": "pytest-agentops/report", "schema_version": 1,
              "campaigns": [{"scenario": "s", "verdicts": [], **_report_campaign(rng, 3)}]}
    del report["campaigns"][0]["records"][4]["outcome"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    assert main([str(path)]) == 2
    assert "outcome must be a string, got NoneType" in capsys.readouterr().err


def test_a_capped_mean_over_clustered_trials_keeps_its_rate():
    """``cost_usd_per_task.mean <= 0.5, cap 1.0`` where a task sets every cost of its group: half the tasks cost
    0.9 a trial, half 0.1 (a mean of exactly 0.5, the boundary), each trial within 0.05 of its task's cost."""
    exp = Expectation.parse("cost_usd_per_task.mean", "<= 0.5, cap 1.0")

    def group(rng):
        cost = 0.9 if rng.random() < 0.5 else 0.1
        return [{"cost_usd": cost + rng.uniform(-0.05, 0.05)} for _ in range(3)]

    assert _sequential_fails(exp, group, np.random.default_rng(17)) / CAMPAIGNS <= _ceiling(0.05)
