"""The live model boundary against a real server: a child process on loopback serving a known policy
(``upstream_server.py``), reached through real sockets by the openai SDK (sync, and async streaming),
openai-agents, pydantic-ai, LangGraph with langchain-openai and the anthropic SDK, under model-API faults,
context drift and perturbed replies. The boundary's metered usage is checked against the server's own
counts; the spend cap stops a campaign; a recorded campaign replays with the server shut down (same
records, same verdicts); a forgotten ``base_url`` is blocked and named. No network beyond loopback.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from pytest_agentops import Faults, run_campaign
from pytest_agentops.llm import ModelFaults
from pytest_agentops.settings.live import LiveLLM

from client_agents import (
    STREAMED,
    anthropic,
    anthropic_agent,
    assert_proven,
    langgraph_agent,
    openai,
    openai_agents_agent,
    openai_async_streaming_agent,
    openai_sync_agent,
    pydantic_ai_agent,
    scenario,
)
from live_support import KEY_ENV, SECRET, UpstreamServer, live_key


@pytest.fixture(scope="module")
def upstream():
    server = UpstreamServer()
    try:
        with live_key():
            yield server
    finally:
        server.stop()


def live(server: UpstreamServer, **kwargs: Any) -> LiveLLM:
    return LiveLLM(base_url=server.base_url, key_env=KEY_ENV, model="gpt-4o-mini", **kwargs)


def live_scenario(name: str, agent: Any, server: UpstreamServer, **kwargs: Any) -> Any:
    settings: dict[str, Any] = {"llm": None, "live": live(server), "trials": 6, "concurrency": 3}
    settings.update(kwargs)
    return scenario(name, agent, **settings)


def assert_metered_as_served(result: Any, server: UpstreamServer) -> None:
    """Every token the boundary metered is one the server reported, and the other way round."""
    served = server.stats()
    assert served["refused"] == 0  # the agent's fake key never reached the server: the real one did
    assert sum(r.input_tokens for r in result.records) == served["input_tokens"] > 0
    assert sum(r.output_tokens for r in result.records) == served["output_tokens"] > 0
    forwarded = [e for r in result.records for e in r.trace if e.kind == "model_call" and e.data.get("status") == 200]
    assert len(forwarded) == served["requests"]


def test_openai_sync_through_the_live_boundary(upstream):
    upstream.reset()
    result = run_campaign(live_scenario("live-openai-sync", openai_sync_agent, upstream))
    assert_proven(result)
    assert_metered_as_served(result, upstream)


def test_openai_async_streaming_with_usage_chunks(upstream):
    upstream.reset()
    STREAMED.clear()
    faults = Faults(model=ModelFaults(rate=0.3, output_rate=0.15, retry_after_s=0.01,
                                      mix={"rate_limit": 1, "timeout": 1, "stream_cut": 1, "server_error": 1}),
                    drift={"rate": 0.15})
    result = run_campaign(live_scenario("live-openai-stream", openai_async_streaming_agent, upstream, faults=faults,
                                        trials=12))
    assert_proven(result)
    assert Counter(f for r in result.records for f in r.faults)["model:stream_cut"] > 0
    assert_metered_as_served(result, upstream)
    for record in result.records:  # the usage chunk the agent asked for reports what was metered
        whole = [e for e in record.trace if e.kind == "model_call" and e.outcome == "ok"]
        assert STREAMED.get(record.seed, 0) == sum(e.input_tokens + e.output_tokens for e in whole)


def test_anthropic_messages_through_the_live_boundary(upstream):
    upstream.reset()
    faults = Faults(model=ModelFaults(rate=0.3, output_rate=0.15, retry_after_s=0.01,
                                      mix={"rate_limit": 1, "overloaded": 1, "timeout": 1, "malformed_body": 1}),
                    drift={"rate": 0.15})
    result = run_campaign(live_scenario("live-anthropic", anthropic_agent, upstream, faults=faults))
    assert_proven(result)
    assert_metered_as_served(result, upstream)
    assert {e.data["api"] for r in result.records for e in r.trace if e.kind == "model_call"} == {"messages"}


def test_pydantic_ai_through_the_live_boundary(upstream):
    upstream.reset()
    result = run_campaign(live_scenario("live-pydantic-ai", pydantic_ai_agent, upstream))
    assert_proven(result)
    assert_metered_as_served(result, upstream)


def test_langgraph_through_the_live_boundary(upstream):
    upstream.reset()
    result = run_campaign(live_scenario("live-langgraph", langgraph_agent, upstream))
    assert_proven(result)
    assert_metered_as_served(result, upstream)


def test_openai_agents_over_the_responses_api_through_the_live_boundary(upstream):
    upstream.reset()
    result = run_campaign(live_scenario("live-openai-agents", openai_agents_agent, upstream, trials=8))
    assert_proven(result)
    assert_metered_as_served(result, upstream)
    assert {e.data["api"] for r in result.records for e in r.trace if e.kind == "model_call"} == {"responses"}


def test_the_spend_cap_stops_a_live_campaign_with_the_verdicts_reached(upstream):
    upstream.reset()
    # a trial here spends about 700 tokens; each call reserves its prompt and 4,096 output tokens (the
    # requests set no max_tokens) until its usage is known
    cap = 15_000
    result = run_campaign(live_scenario("live-capped", openai_sync_agent, upstream, trials=40, faults=Faults(),
                                        concurrency=2, expect={"completion_rate": ">= 0.9"}),
                          max_campaign_tokens=cap)
    served = upstream.stats()
    spend = result.spend
    assert spend is not None and spend["stopped_by_cap"] and spend["max_tokens"] == cap
    assert served["input_tokens"] + served["output_tokens"] == spend["tokens"] <= cap
    assert 0 < result.n < 40 and all(r.outcome == "completed" for r in result.records)
    assert [v.verdict for v in result.verdicts] == ["inconclusive"]  # too few trials to decide
    data = result.to_dict()
    assert data["spend"]["stopped_by_cap"] and data["spend"]["tokens"] == spend["tokens"]


def test_record_then_replay_with_the_server_shut_down(tmp_path, monkeypatch):
    """A recorded campaign becomes an offline test: the same records and verdicts, the server gone; a changed
    request is a clear error naming the cassette, never a call to the network."""
    server = UpstreamServer()
    monkeypatch.setenv(KEY_ENV, SECRET)
    try:
        made = [live_scenario(f"round-trip-{name}", agent, server, trials=4)
                for name, agent in (("sync", openai_sync_agent), ("stream", openai_async_streaming_agent))]
        recorded = [run_campaign(s, record=str(tmp_path)) for s in made]
    finally:
        server.stop()
    monkeypatch.delenv(KEY_ENV)  # a replay needs no key
    lines = (tmp_path / "round-trip-sync.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line)["trial"] in range(4) for line in lines)
    for s, before in zip(made, recorded, strict=True):
        after = run_campaign(s, cassette=str(tmp_path))  # no key, no server: the cassette answers
        assert after.to_dict(with_traces=True) == before.to_dict(with_traces=True)
    stale = run_campaign(made[0].replace(task="Refund order 42 today"), cassette=str(tmp_path))
    assert {r.outcome for r in stale.records} == {"error"}
    reason = stale.records[0].reason
    assert "round-trip-sync.jsonl" in reason and "gpt-4o-mini" in reason and "Refund order 42 today" in reason
    # a trial not recorded is never answered with another trial's answers (a copy judged as a trial of its own: a
    # review measured false passes in 70% of replays with ten times the recorded trials, 5% stated)
    longer = run_campaign(made[0], cassette=str(tmp_path), trials=8)
    assert [r.to_dict() for r in longer.records[:4]] == [r.to_dict() for r in recorded[0].records]
    assert {r.outcome for r in longer.records[4:]} == {"error"}
    assert all("holds no trial of seed" in r.reason for r in longer.records[4:])
    reseeded = run_campaign(made[0], cassette=str(tmp_path), seed=recorded[0].seed + 1)
    assert {r.outcome for r in reseeded.records} == {"error"}


@pytest.mark.parametrize("key", ["1", "k"])
def test_a_short_key_of_a_local_server_is_no_secret_to_cut_out_of_answers(tmp_path, monkeypatch, key):
    """Found by an outside review: a local server's key of one character (any key works there) was replaced in
    every answer: ``"prompt_tokens": [REDACTED]0`` reached the agent (each trial an error, JSONDecodeError), and
    the cassette held ``to[REDACTED]ens``, which its replay refused. A key shorter than 8 characters is not
    redacted, as an environment variable's value of that length is not."""
    server = UpstreamServer(key=key)
    monkeypatch.setenv(KEY_ENV, key)
    try:
        made = live_scenario(f"short-key-{key}", openai_sync_agent, server, trials=3)
        recorded = run_campaign(made, record=str(tmp_path))
    finally:
        server.stop()
    assert recorded.outcome_counts == {"completed": 3}, [r.reason for r in recorded.records]
    assert "REDACTED" not in (tmp_path / f"short-key-{key}.jsonl").read_text()
    monkeypatch.delenv(KEY_ENV)
    replayed = run_campaign(made, cassette=str(tmp_path))
    assert replayed.to_dict(with_traces=True) == recorded.to_dict(with_traces=True)


def forgetful_agent(task: str, env: Any) -> str:
    client = openai.OpenAI(api_key=env.llm.api_key, max_retries=1)  # no base_url: the provider's real host
    client.chat.completions.create(model=env.llm.model, messages=[{"role": "user", "content": task}])
    return "done"


def test_a_forgotten_base_url_is_blocked_and_named(upstream):
    result = run_campaign(live_scenario("forgetful", forgetful_agent, upstream, trials=2, faults=Faults(),
                                        expect={}))
    for record in result.records:
        assert record.outcome == "error" and "APIConnectionError" in record.reason
        assert record.extra["blocked_hosts"] == ["api.openai.com"]
        blocked = [e for e in record.trace if e.kind == "network"]
        assert [(e.name, e.outcome) for e in blocked] == [("api.openai.com", "blocked")]
    assert result.to_dict()["blocked_hosts"] == ["api.openai.com"]


def test_an_anthropic_client_without_base_url_is_blocked_too(upstream):
    def agent(task: str, env: Any) -> str:
        try:
            anthropic.Anthropic(api_key=env.llm.api_key, max_retries=0).messages.create(
                model=env.llm.model, max_tokens=10, messages=[{"role": "user", "content": task}])
        except anthropic.APIConnectionError as exc:
            return f"blocked: {exc.__cause__}"
        return "reached"

    result = run_campaign(live_scenario("forgetful-anthropic", agent, upstream, trials=1, faults=Faults(),
                                        expect={}))
    record = result.records[0]
    assert record.extra["blocked_hosts"] == ["api.anthropic.com"]
    assert "api.anthropic.com" in record.output and "forgetful-anthropic[trial-0" in record.output
