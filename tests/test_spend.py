"""The campaign spend cap (``max_campaign_usd`` / ``max_campaign_tokens``): a campaign never spends past it,
whatever the cap, the trials' costs and the concurrency; it launches no trial that could cross it, stops,
and reports the verdicts reached with its spend; the cap is set from Python, YAML, the marker and the
command line."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_agentops import Faults, Scenario, run_campaign
from pytest_agentops.errors import ConfigError
from pytest_agentops.llm import FakeLLM, rule
from pytest_agentops.precedence import resolve_run
from pytest_agentops.settings.run import RunSource
from pytest_agentops.settings.spend import SpendCap, estimate_usd

PRICES = {"metered-model": (2.0, 8.0)}  # USD per million tokens
CLIENT = httpx.Client()  # one client for every trial (a new one loads the CA bundle each time)


def costly_agent(plan: list[tuple[int, int]], seen: list[int], lock: threading.Lock) -> Any:
    """Trial ``i`` makes ``len(plan)`` model calls over HTTP to the fake model, the k-th with a prompt of
    ``plan[k][0]`` characters and a reply of ``plan[k][1]`` (the policy reads the size off the prompt); the
    agent counts the tokens each reply reports, independently of the harness."""

    def agent(task: str, env: Any) -> str:
        index = int(env.trial_id.split("-")[1])
        for k, (prompt, reply) in enumerate(plan[index % len(plan):] + plan[: index % len(plan)]):
            if k >= 3:
                break
            body = {"model": "metered-model", "messages": [{"role": "user", "content": f"{reply}:" + "x" * prompt}]}
            answer = CLIENT.post(f"{env.llm.base_url}/chat/completions", json=body,
                                headers={"authorization": f"Bearer {env.llm.api_key}"})
            usage = answer.json()["usage"]
            with lock:
                seen.append(usage["prompt_tokens"] + usage["completion_tokens"])
        return "done"

    return agent


@rule
def sized_reply(request: Any) -> str:
    """A reply of as many characters as the prompt's first number says."""
    size = int(str(request.messages[-1]["content"]).split(":")[0])
    return "y" * size


# Bounds: prompts up to 4,000 characters and replies up to 8,000 (about 1,000 and 2,000 tokens; a call reserves
# 4,096 output tokens, so every reply fits its reservation, as a request's own max_tokens would make it); caps
# from one call's worth to many trials' worth; up to 10 trials, concurrency 1 to 6 (several calls in flight).
calls = st.tuples(st.integers(0, 4000), st.integers(1, 8000))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(calls, min_size=1, max_size=5), tokens=st.one_of(st.none(), st.integers(5000, 60_000)),
       usd=st.one_of(st.none(), st.floats(0.01, 0.3)), concurrency=st.sampled_from([1, 2, 6]),
       trials=st.integers(1, 10))
def test_a_campaign_never_spends_past_its_cap(plan, tokens, usd, concurrency, trials):
    if tokens is None and usd is None:
        usd = 0.05
    seen: list[int] = []
    scenario = Scenario(name="capped", agent=costly_agent(plan, seen, threading.Lock()), task="spend",
                        llm=FakeLLM(sized_reply, model="metered-model"), prices=PRICES, faults=Faults(),
                        trials=trials, concurrency=concurrency, seed=5, expect={"completion_rate": ">= 0.5"})
    result = run_campaign(scenario, max_campaign_tokens=tokens, max_campaign_usd=usd)
    spend = result.spend
    assert spend is not None
    # every token spent is one the cap accounted for (a call an early stop cut short counts as its reservation)
    assert sum(seen) == spend["tokens"] if not result.stopped_early else sum(seen) <= spend["tokens"]
    if tokens is not None:
        assert spend["tokens"] <= tokens
    if usd is not None:
        assert spend["usd"] <= usd + 1e-12
    # the judged trials are the launch-order prefix, complete unless the cap stopped the campaign
    assert [r.index for r in result.records] == list(range(result.n))
    assert result.n == trials or spend["stopped_by_cap"] or result.stopped_early
    assert all(r.outcome == "completed" for r in result.records)  # a trial the cap cut is never judged


def test_the_campaign_launches_no_trial_that_could_cross_the_cap():
    """Spend reported after the fact (``env.record_usage``): the costliest trial so far is what the next
    one may cost, so a campaign of 100-token trials under a 1,000-token cap runs exactly 10, at any
    concurrency, and reports the verdicts reached."""
    def agent(task: str, env: Any) -> str:
        env.record_usage(input_tokens=80, output_tokens=20, model="metered-model")
        return "done"

    for concurrency in (1, 4):
        scenario = Scenario(name="ten", agent=agent, task="t", trials=50, concurrency=concurrency, faults=Faults(),
                            expect={"completion_rate": ">= 0.99"}, max_campaign_tokens=1000, seed=2)
        result = run_campaign(scenario)
        assert result.n == 10 and result.spend["tokens"] == 1000 and result.spend["stopped_by_cap"]
        assert [v.verdict for v in result.verdicts] == ["inconclusive"]
        assert not result.passed
        data = result.to_dict()
        assert data["spend"] == {"usd": data["spend"]["usd"], "tokens": 1000, "max_usd": None, "max_tokens": 1000,
                                 "stopped_by_cap": True, "trials_cut": 0, "calls_refused": 0}


def test_a_decided_verdict_is_reported_at_the_cap():
    def agent(task: str, env: Any) -> str:
        env.record_usage(input_tokens=10, output_tokens=0, model="metered-model")
        return "done"

    scenario = Scenario(name="decided", agent=agent, task="t", trials=1000, faults=Faults(), seed=3,
                        expect={"completion_rate": ">= 0.5"}, early_stop=False, max_campaign_tokens=400)
    result = run_campaign(scenario)
    assert result.n == 40 and [v.verdict for v in result.verdicts] == ["pass"]


def test_the_cap_resolves_like_every_other_setting():
    scenario = Scenario(name="s", agent=lambda t, e: 1, max_campaign_usd=5, max_campaign_tokens=1000)
    assert resolve_run(scenario).spend == SpendCap(5.0, 1000)
    run = resolve_run(scenario, (RunSource("command line", max_campaign_tokens=9), RunSource("marker",
                                                                                             max_campaign_usd=2)))
    assert run.spend == SpendCap(2.0, 9)
    assert resolve_run(Scenario(name="s", agent=lambda t, e: 1)).spend is None
    with pytest.raises(ConfigError, match=r"max_campaign_usd=0 must be a number of US dollars > 0"):
        Scenario(name="s", agent=lambda t, e: 1, max_campaign_usd=0)
    with pytest.raises(ConfigError, match=r"max_campaign_tokens=1.5 must be a whole number of tokens >= 1"):
        Scenario(name="s", agent=lambda t, e: 1, max_campaign_tokens=1.5)


def test_a_cost_estimate_before_the_run():
    # 400 trials x (3,000 input + 500 output tokens) at gpt-4o-mini's $0.15/$0.60 per million
    assert estimate_usd(400, 3000, 500, "gpt-4o-mini") == pytest.approx(400 * (3000 * 0.15 + 500 * 0.6) / 1e6)
    assert estimate_usd(10, 1000, 0, "my-model", {"my-model": (1, 1)}) == pytest.approx(0.01)


def test_the_cap_on_the_command_line_in_the_header_the_table_and_the_json_report(pytester):
    pytester.makepyfile(test_capped="""
        from pytest_agentops import Scenario

        def agent(task, env):
            env.record_usage(input_tokens=90, output_tokens=10, model="gpt-4o-mini")
            return "done"

        def test_capped(agent_chaos):
            agent_chaos.run(Scenario(name="capped", agent=agent, task="t", trials=50, seed=1,
                                     expect={"completion_rate": ">= 0.99"})).check()
    """)
    result = pytester.runpytest("--agent-chaos", "--agent-chaos-max-tokens=1_000", "--agent-chaos-max-usd=5",
                                "--agent-chaos-report=report.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*spend cap=$5 and 1,000 tokens per campaign (repeat this run with *"
                                 "--agent-chaos-max-usd=5 --agent-chaos-max-tokens=1000)",
                                 "*INCONCLUSIVE: completion_rate*",
                                 "capped  seed=1  profile=mid  10/50 trials  spent $0.000195 of $5, 1,000 tokens of "
                                 "1,000",
                                 "*stopped at the spend cap after 10 judged trial(s)*"])
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["campaigns"][0]["spend"]["tokens"] == 1000
    assert report["campaigns"][0]["spend"]["stopped_by_cap"] is True
    bad = pytester.runpytest("--agent-chaos", "--agent-chaos-max-tokens=lots")
    bad.stderr.fnmatch_lines(["*--agent-chaos-max-tokens='lots' must be a whole number of tokens >= 1*"])


def test_a_trial_run_again_starts_its_own_spend_afresh_and_the_total_keeps_what_was_spent():
    """A trial whose event loop was retired runs again from the start: what its first run spent stays in the
    campaign's total (it was spent) but not in its own figure, which the launch rule reads (``most_per_trial``),
    and it is not over until its new run is."""
    from pytest_agentops.harness.spend import Ledger

    ledger = Ledger(SpendCap(max_usd=1.0))
    ledger.commit(1, 0.25, 100)
    ledger.finish(1, cut=False)
    assert ledger.most_per_trial() == (0.25, 100)
    ledger.restart(1)
    assert ledger.trial_spend(1) == (0.0, 0) and ledger.most_per_trial() is None
    assert (ledger.usd, ledger.tokens) == (0.25, 100)
    ledger.commit(1, 0.25, 100)
    ledger.finish(1, cut=False)
    assert ledger.trial_spend(1) == (0.25, 100) and ledger.most_per_trial() == (0.25, 100)
    assert (ledger.usd, ledger.tokens) == (0.5, 200)
