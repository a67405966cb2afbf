"""Real clients against the fake model, offline: the openai SDK (sync and async, streaming), pydantic-ai,
LangGraph with langchain-openai, the anthropic SDK and openai-agents (Responses API), each in a short
campaign under model-API faults, perturbed replies and context drift. The agents are in client_agents.py.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pytest_agentops import Faults, run_campaign
from pytest_agentops.llm import Drift, ModelFaults

from client_agents import (
    STREAMED,
    anthropic_agent,
    assert_proven,
    httpx2,
    langgraph_agent,
    openai_agents_agent,
    openai_async_streaming_agent,
    openai_sync_agent,
    pydantic_ai_agent,
    pydantic_ai_sync_tools_agent,
    scenario,
)


def test_sdk_retry_jitter_replays_the_same_virtual_times():
    # timeouts and dropped connections carry no retry-after: the SDK jitters its backoff with random()
    faults = Faults(model=ModelFaults(rate=0.4, mix={"timeout": 1, "connection_reset": 1}, timeout_s=2.0))
    runs = [run_campaign(scenario("jitter", openai_sync_agent, faults=faults, trials=6, concurrency=3))
            for _ in range(2)]
    times = [[[e.t for e in r.trace] for r in run.records] for run in runs]
    assert times[0] == times[1]
    assert any(e.data.get("attempt", 1) > 1 for r in runs[0].records for e in r.trace if e.kind == "model_call")


def test_openai_sync_chat_completions_loop():
    result = run_campaign(scenario("openai-sync", openai_sync_agent))
    assert_proven(result)
    again = run_campaign(scenario("openai-sync", openai_sync_agent))  # same seed: same tokens, faults, verdicts

    def summary(res: Any) -> Any:
        return ([(r.outcome, r.input_tokens, r.output_tokens, r.faults) for r in res.records],
                [(v.key, v.verdict, v.estimate) for v in res.verdicts])

    assert summary(again) == summary(result)


def test_openai_async_streaming_loop_with_usage_chunks():
    STREAMED.clear()
    faults = Faults(model=ModelFaults(rate=0.3, output_rate=0.15, retry_after_s=0.01,
                                      mix={"rate_limit": 1, "timeout": 1, "stream_cut": 1, "server_error": 1}),
                    drift=Drift(rate=0.15))
    result = run_campaign(scenario("openai-async-stream", openai_async_streaming_agent, faults=faults))
    assert_proven(result)
    assert Counter(f for r in result.records for f in r.faults)["model:stream_cut"] > 0
    for record in result.records:  # the include_usage chunk reports exactly what was metered for whole replies
        whole = [e for e in record.trace if e.kind == "model_call" and e.outcome == "ok"]
        assert STREAMED.get(record.seed, 0) == sum(e.input_tokens + e.output_tokens for e in whole)


def test_pydantic_ai_with_the_openai_provider():
    result = run_campaign(scenario("pydantic-ai", pydantic_ai_agent))
    assert_proven(result)


def test_pydantic_ai_with_sync_tools_run_in_anyio_worker_threads():
    result = run_campaign(scenario("pydantic-ai-sync", pydantic_ai_sync_tools_agent))
    assert_proven(result)
    assert not any("virtual time limit" in r.reason for r in result.records)


def test_langgraph_with_langchain_openai():
    result = run_campaign(scenario("langgraph", langgraph_agent))
    assert_proven(result)


def test_anthropic_messages_loop():
    faults = Faults(model=ModelFaults(rate=0.3, output_rate=0.15, retry_after_s=0.01,
                                      mix={"rate_limit": 1, "overloaded": 1, "timeout": 1, "server_error": 1}),
                    drift=Drift(rate=0.15))
    result = run_campaign(scenario("anthropic", anthropic_agent, faults=faults))
    assert_proven(result)
    assert Counter(f for r in result.records for f in r.faults)["model:overloaded"] > 0  # HTTP 529


def test_openai_agents_over_the_responses_api():
    result = run_campaign(scenario("openai-agents", openai_agents_agent))
    assert_proven(result)
    calls = [e for r in result.records for e in r.trace if e.kind == "model_call"]
    assert {e.data["api"] for e in calls} == {"responses"}


def test_works_beside_pytest_httpx2(httpx2_mock):
    """The user's httpx2_mock routes keep answering during and after a campaign through the fake."""
    httpx2_mock.get("https://api.shipping.test/rates").respond(200, json={"rate": 5})

    def agent(task: str, env: Any) -> str:
        assert httpx2.get("https://api.shipping.test/rates").json() == {"rate": 5}
        return openai_sync_agent(task, env)

    result = run_campaign(scenario("beside-httpx2", agent, trials=3, faults=Faults(), expect={}))
    assert all(r.outcome == "completed" for r in result.records)
    assert httpx2.get("https://api.shipping.test/rates").json() == {"rate": 5}
    assert httpx2_mock.routes[0].call_count == 4
