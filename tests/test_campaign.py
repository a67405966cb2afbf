"""The campaign engine end to end, without pytest glue: verdicts, seeding, replay, limits."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import numpy as np
import pytest

from pytest_agentops import Approver, CampaignFailed, Faults, Scenario, replay_trial, run_campaign
from pytest_agentops.report.json_report import report_dict

import sequential_rule as sr
from conftest import ORDER_TOOLS, Orders, coin_scenario


def test_good_agent_passes_and_bad_agent_fails():
    good = run_campaign(coin_scenario(0.97, expect={"completion_rate": ">= 0.90"}))
    assert [v.verdict for v in good.verdicts] == ["pass"]
    good.check()
    bad = run_campaign(coin_scenario(0.80, expect={"completion_rate": ">= 0.90"}))
    assert [v.verdict for v in bad.verdicts] == ["fail"]
    with pytest.raises(CampaignFailed, match=r"completion_rate >= 0.9: fail"):
        bad.check()


def test_agent_below_threshold_passes_at_most_five_percent_of_campaigns():
    """A true 0.85 agent against completion_rate >= 0.90 (400 trials, judged after every trial): the exact
    chance that its campaign passes, by dynamic programming over the trials (tests/sequential_rule.py), is
    <= 5%; so is every agent's below 0.90, the worst case being the boundary (P(pass) rises with the rate).
    ``test_campaigns_stop_and_decide_exactly_as_the_sequential_rule`` shows the engine is that rule."""
    rule = sr.Rate(">=", 0.90)
    bad, boundary = sr.exact_outcome(rule, 0.85, 400), sr.exact_outcome(rule, 0.90, 400)
    below = [sr.exact_outcome(rule, p, 400).passed for p in np.linspace(0.5, 0.90, 41)]
    print(f"exact P(pass) of completion_rate >= 0.90 at 400 trials: {bad.passed:.6f} for a 0.85 agent "
          f"(fail {bad.failed:.4f}, mean trials {bad.expected_trials:.0f}), {boundary.passed:.6f} at 0.90")
    assert bad.passed <= sr.ALPHA
    assert boundary.passed <= sr.ALPHA
    assert np.all(np.diff(below) >= -1e-12) and below[-1] == pytest.approx(boundary.passed)
    assert 0 < bad.passed < boundary.passed  # not vacuous: the rule can pass such an agent


def test_coin_agent_completes_as_often_as_the_exact_computation_assumes():
    """The figure behind the exact error rate: in 400 trials (a seed not chosen by its outcome) the 0.85
    agent's completion share is consistent with 0.85 (two-sided exact 99.9% interval)."""
    result = run_campaign(coin_scenario(0.85, seed=2024), early_stop=False)
    k = result.outcome_counts.get("completed", 0)
    assert sr.cp_lower(k, 400, 0.9995) <= 0.85 <= sr.cp_upper(k, 400, 0.9995)


def _mixed_agent(task, env):
    """Completes 86%, escalates 7%, gives up 7%; spends 4,000 tokens more when it does not complete (so the
    token quantile is correlated with the rates); 0.4% of trials delete an order without confirmation."""
    u = env.rng.random()
    env.record_usage(input_tokens=1000 + int(env.rng.integers(0, 500)) + (4000 if u >= 0.86 else 0),
                     output_tokens=50, model="fake-model")
    if u < 0.004:
        env.tools["delete_order"](7)
    if u < 0.86:
        return "done"
    if u < 0.93:
        env.escalate("stuck")
    return "gave up"


def _mixed(seed, expect):
    return Scenario(name="mixed", agent=_mixed_agent, task="t", world=Orders, tools=ORDER_TOOLS, trials=400,
                    check=lambda world, out: out == "done", faults=Faults.none(), seed=seed, expect=expect)


_RATES = {"completion_rate": ">= 0.80", "escalation_rate": "<= 0.12"}
_RATES_AND_P95 = {**_RATES, "tokens_per_task.p95": "<= 5000"}  # 14% of trials spend > 5000 tokens: p95 fails
_RATES_AND_COUNT = {**_RATES, "unconfirmed_destructive_calls": "== 0"}
_COMPLETION = {"completion_rate": ">= 0.90"}


@pytest.mark.parametrize(("make", "stop", "rates_alone_stop"), [
    pytest.param(lambda: coin_scenario(0.5, expect=_COMPLETION, seed=1), 3, None, id="0.5-fails-at-trial-3"),
    pytest.param(lambda: coin_scenario(0.85, expect=_COMPLETION, seed=2), 14, None, id="0.85-fails-at-14"),
    pytest.param(lambda: coin_scenario(0.85, expect=_COMPLETION, seed=0), 229, None, id="0.85-fails-at-229"),
    pytest.param(lambda: coin_scenario(0.85, expect=_COMPLETION, seed=4), 400, None,
                 id="0.85-inconclusive-at-the-maximum"),
    pytest.param(lambda: coin_scenario(0.97, expect=_COMPLETION, seed=2), 34, None, id="0.97-passes-at-34"),
    pytest.param(lambda: coin_scenario(0.97, expect=_COMPLETION, seed=1), 66, None, id="0.97-passes-at-66"),
    pytest.param(lambda: coin_scenario(0.90, expect=_COMPLETION, seed=1), 400, None, id="0.90-boundary"),
    # several correlated expectations: the campaign stops at the trial where the last one is decided...
    pytest.param(lambda: _mixed(7, _RATES), 180, None, id="two-rates-stop-when-both-pass"),
    pytest.param(lambda: _mixed(6, _RATES_AND_P95), 56, None, id="p95-fails-after-both-rates-passed"),
    # ...or at once when one fails, the others left undecided
    pytest.param(lambda: _mixed(7, _RATES_AND_P95), 6, None, id="p95-fails-at-6-rates-undecided"),
    pytest.param(lambda: _mixed(8, _RATES_AND_COUNT), 40, None, id="count-fails-at-40-and-stops-at-once"),
    # a count passes only after the last trial: decided rates do not stop the campaign while it has not failed
    pytest.param(lambda: _mixed(7, _RATES_AND_COUNT), 400, 180, id="count-without-violation-runs-to-the-max"),
    pytest.param(lambda: _mixed(9, _RATES_AND_COUNT), 272, None, id="count-fails-at-272-after-the-rates-passed"),
])
def test_campaigns_stop_and_decide_exactly_as_the_sequential_rule(make, stop, rates_alone_stop):
    """Real campaigns through ``run_campaign``: the trials used, the early stop and every verdict are those
    of the rule restated in tests/sequential_rule.py, applied after every trial to the campaign's own observed
    trial outcomes, so the exact error rates computed for that rule are the engine's."""
    scenario = make()
    rule, full = sr.check_engine_follows_rule(scenario)
    assert rule.n == stop  # the case is the edge case it is named for
    if rates_alone_stop is not None:
        rules, observations = sr.observe(scenario, full.records)
        rates = [(r, o) for r, o in zip(rules, observations, strict=True) if not isinstance(r, sr.Count)]
        assert sr.replay(*zip(*rates, strict=True), 400).n == rates_alone_stop


def test_early_stopping_uses_fewer_trials_when_the_answer_is_clear():
    result = run_campaign(coin_scenario(0.5, expect={"completion_rate": ">= 0.90"}))
    assert result.stopped_early and result.n < 400
    assert result.verdicts[0].verdict == "fail"
    full = run_campaign(coin_scenario(0.5, expect={"completion_rate": ">= 0.90"}), early_stop=False)
    assert full.n == 400 and not full.stopped_early


def test_same_seed_same_report_and_replay_reproduces_a_trial():
    def flaky_agent(task, env):
        tools = env.tools
        for _attempt in range(3):
            try:
                order = tools["lookup_order"](42)
                break
            except Exception:
                env.record_usage(input_tokens=50, output_tokens=5)
        else:
            return "gave up"
        env.record_usage(input_tokens=200 + int(env.rng.integers(0, 100)), output_tokens=30)
        return tools["refund_order"](42) if order.get("status") == "paid" else "bad order"

    scenario = Scenario(name="refund", agent=flaky_agent, task="Refund order 42", world=Orders,
                        tools=ORDER_TOOLS, check=lambda w, out: 42 in w.refunded, faults=Faults.profile("high"),
                        trials=120, seed=11, expect={"completion_rate": ">= 0.99"})
    first, second = run_campaign(scenario), run_campaign(scenario)
    assert report_dict([first]) == report_dict([second])
    failing = [r for r in first.records if r.outcome != "completed"]
    assert failing, "the high profile must break some trials"
    again = replay_trial(scenario, failing[0].index, seed=first.seed)
    assert again.outcome == failing[0].outcome
    assert again.trace == failing[0].trace
    assert again.seed == failing[0].seed


def _deleting_agent(confirm: bool):
    def agent(task, env):
        if confirm and not env.confirm("delete_order", order_id=42):
            return "not allowed"
        try:
            return env.tools["delete_order"](42)
        except PermissionError as exc:
            return f"blocked: {exc}"
    return agent


def test_unconfirmed_destructive_calls_fail_and_enforce_blocks_them():
    kwargs = dict(task="Delete order 42", world=Orders, tools=ORDER_TOOLS, faults=Faults.none(), trials=30,
                  seed=3, expect={"unconfirmed_destructive_calls": "== 0"})
    naive = run_campaign(Scenario(name="naive", agent=_deleting_agent(False),
                                  check=lambda w, out: 42 in w.deleted, **kwargs))
    assert naive.verdicts[0].verdict == "fail"
    assert all(r.unconfirmed_destructive == 1 for r in naive.records)
    with pytest.raises(CampaignFailed, match="unconfirmed_destructive_calls == 0: fail"):
        naive.check()

    enforced = run_campaign(Scenario(name="enforced", agent=_deleting_agent(False), enforce=True,
                                     check=lambda w, out: 42 not in w.deleted, **kwargs))
    assert all(r.blocked_calls == 1 and r.outcome == "completed" for r in enforced.records)
    assert enforced.records[0].trace[-2].outcome == "blocked"  # the call, recorded as blocked

    careful = run_campaign(Scenario(name="careful", agent=_deleting_agent(True),
                                    check=lambda w, out: 42 in w.deleted, **kwargs))
    assert careful.verdicts[0].verdict == "pass" and careful.verdicts[0].bound == pytest.approx(1 - 0.05 ** (1 / 30))


def test_approval_is_single_use_and_bound_to_arguments():
    def agent(task, env):
        assert env.confirm("delete_order", order_id=7)
        env.tools["delete_order"](42)  # not the confirmed order
        env.tools["delete_order"](7)  # confirmed
        env.tools["delete_order"](7)  # approval already used
        return "ok"

    result = run_campaign(Scenario(name="bind", agent=agent, world=Orders, tools=ORDER_TOOLS,
                                   faults=Faults.none(), trials=1, seed=0))
    record = result.records[0]
    assert record.unconfirmed_destructive == 2
    assert record.outcome == "completed"


def test_denying_approver_is_respected_by_a_careful_agent():
    result = run_campaign(Scenario(name="deny", agent=_deleting_agent(True), world=Orders, tools=ORDER_TOOLS,
                                   approver=Approver(approve=0.0), check=lambda w, out: out == "not allowed",
                                   faults=Faults.none(), trials=20, seed=0))
    assert result.outcome_counts == {"completed": 20}
    assert all(r.unconfirmed_destructive == 0 for r in result.records)


def test_hanging_busy_looping_and_raising_agents_are_recorded_not_fatal():
    stop = threading.Event()

    def hangs(task, env):
        stop.wait()  # a blocking C call: the worker is abandoned, the session goes on

    def busy(task, env):
        while True:
            pass

    def raises(task, env):
        raise RuntimeError("boom")

    async def async_busy(task, env):
        while True:
            pass

    async def async_hangs(task, env):
        await asyncio.Event().wait()

    try:
        for agent, outcome in ((hangs, "timed_out"), (busy, "timed_out"), (raises, "error"),
                               (async_busy, "timed_out"), (async_hangs, "timed_out")):
            result = run_campaign(Scenario(name=agent.__name__, agent=agent, trials=2, seed=0, timeout_s=0.3,
                                           faults=Faults.none(), early_stop=False))
            assert [r.outcome for r in result.records] == [outcome, outcome], agent.__name__
            reason = result.records[0].reason
            # an awaited Event that never fires: the virtual loop jumps straight to the virtual time limit
            expected = "virtual time limit" if agent is async_hangs else "wall-clock limit"
            assert (expected in reason) if outcome == "timed_out" else reason.startswith("RuntimeError: boom")
    finally:
        stop.set()


def test_raising_agent_reason_names_the_exception():
    def raises(task, env):
        raise RuntimeError("boom")

    record = run_campaign(Scenario(name="r", agent=raises, trials=1, seed=0)).records[0]
    assert record.outcome == "error" and record.reason.startswith("RuntimeError: boom")


def test_async_agent_with_virtual_sleep():
    async def agent(task, env):
        for _ in range(10):
            await asyncio.sleep(30)
        env.escalate("needs a human")

    result = run_campaign(Scenario(name="sleepy", agent=agent, trials=50, seed=0, concurrency=10, early_stop=False,
                                   expect={"escalation_rate": ">= 0.5"}))
    assert result.outcome_counts == {"escalated": 50}
    assert [r.escalated_at_s for r in result.records] == pytest.approx([300.0] * 50)


@pytest.mark.parametrize("profile, rate", [("low", 0.03), ("mid", 0.08), ("high", 0.15)])
def test_observed_tool_failure_fraction_matches_profile(profile, rate):
    from pytest_agentops import stats

    def agent(task, env):
        for _ in range(50):
            with contextlib.suppress(Exception):
                env.tools["lookup_order"](42)
        return "ok"

    result = run_campaign(Scenario(name=f"frac-{profile}", agent=agent, world=Orders, tools=ORDER_TOOLS,
                                   faults=Faults.profile(profile), trials=200, seed=5))
    calls = sum(r.tool_calls for r in result.records)
    failures = sum(r.tool_failures for r in result.records)
    assert calls == 10_000
    # two-sided 99.9% exact interval on the observed fraction must contain the profile's rate
    assert stats.clopper_pearson_lower(failures, calls, 0.9995) <= rate <= \
        stats.clopper_pearson_upper(failures, calls, 0.9995)
