"""Real clients against the fake model, offline: the openai SDK (sync and async, streaming), pydantic-ai,
LangGraph with langchain-openai, the anthropic SDK and openai-agents (Responses API), each in a short
campaign under model-API faults, perturbed replies and context drift.

These SDKs send through httpx2; they are the optional extra ``clients``. Locally a missing one skips its
test; in CI (``CI`` set) a missing one is an error, so these tests never silently stop running.
The SDKs are imported here, outside any trial (importing pydantic.v1 while a campaign holds the virtual
clock's datetime stand-ins fails).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections import Counter
from typing import Any

import pytest

from pytest_agentops import Faults, Scenario, run_campaign
from pytest_agentops.llm import Drift, FakeLLM, ModelFaults, call, call_tools_then_answer

from conftest import ORDER_TOOLS, Orders


def need(module: str) -> Any:
    """Import an optional client library: skip without it locally, fail without it in CI."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


openai = need("openai")

TOOL_SCHEMAS = [{"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}
    for name in ("lookup_order", "refund_order", "delete_order")]
POLICY = call_tools_then_answer(call("lookup_order", order_id=42), call("refund_order", order_id=42),
                                answer="Refunded order 42.")
FAULTS = Faults(model=ModelFaults(rate=0.3, output_rate=0.15, retry_after_s=0.01), drift=Drift(rate=0.15))
EXPECT = {"completion_rate": ">= 0.5", "tokens_per_task.p50": "<= 20000"}


def scenario(name: str, agent: Any, **kwargs: Any) -> Scenario:
    settings: dict[str, Any] = dict(name=name, agent=agent, task="Refund order 42", world=Orders, tools=ORDER_TOOLS,
                                    check=lambda w, out: 42 in w.refunded, llm=FakeLLM(POLICY, model="gpt-4o-mini"),
                                    faults=FAULTS, trials=12, seed=17, expect=EXPECT, early_stop=False)
    settings.update(kwargs)
    return Scenario(**settings)


def run_tool(env: Any, name: str, arguments: Any) -> str:
    """Run a tool call the model asked for; an error goes back to the model as text (like frameworks do)."""
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
        return str(env.tools[name](**args))
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"


def soft_tools(env: Any, *, asynchronous: bool = False) -> list[Any]:
    """The trial's tools, answering errors as text; sync, or async (``asynchronous=True``)."""
    out = []
    for fn in env.tools.values():
        if asynchronous:
            async def wrapper(*a: Any, _fn: Any = fn, **k: Any) -> Any:
                try:
                    return _fn(*a, **k)
                except Exception as exc:
                    return f"error: {type(exc).__name__}: {exc}"
        else:
            def wrapper(*a: Any, _fn: Any = fn, **k: Any) -> Any:
                try:
                    return _fn(*a, **k)
                except Exception as exc:
                    return f"error: {type(exc).__name__}: {exc}"
        out.append(functools.update_wrapper(wrapper, fn))
    return out


def assert_proven(result: Any, *, kinds: tuple[str, ...] = ("model", "model_output", "drift")) -> None:
    """Tokens metered per attempt, faults reached the client and were recorded, retries seen, verdicts made."""
    assert [v.key for v in result.verdicts] == list(EXPECT)
    assert all(v.verdict in ("pass", "fail", "inconclusive") for v in result.verdicts)
    faults = Counter(f.split(":")[0] for r in result.records for f in r.faults)
    assert all(faults[k] > 0 for k in kinds), faults
    retried = 0
    for record in result.records:
        calls = [e for e in record.trace if e.kind == "model_call"]
        assert calls and record.input_tokens == sum(e.input_tokens for e in calls) > 0
        assert record.output_tokens == sum(e.output_tokens for e in calls)
        retried += sum(1 for e in calls if e.data["attempt"] > 1)
    assert retried > 0  # the client retried failed attempts, each metered and traced on its own
    assert sum(r.outcome == "completed" for r in result.records) > 0


# --- openai ------------------------------------------------------------------------------------------------


def openai_sync_agent(task: str, env: Any) -> str:
    client = openai.OpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3)
    messages: list[Any] = [{"role": "system", "content": "You refund orders."}, {"role": "user", "content": task}]
    for _ in range(10):
        response = client.chat.completions.create(model=env.llm.model, messages=messages, tools=TOOL_SCHEMAS)
        message = response.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return message.content or ""
        for tc in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": tc.id,
                             "content": run_tool(env, tc.function.name, tc.function.arguments)})
    return "too many turns"


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


STREAMED: dict[int, int] = {}


async def openai_async_streaming_agent(task: str, env: Any) -> str:
    client = openai.AsyncOpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3)
    messages: list[Any] = [{"role": "system", "content": "You refund orders."}, {"role": "user", "content": task}]
    for _ in range(10):
        for _attempt in range(3):  # a stream cut mid-way is not retried by the SDK: the agent retries
            try:
                stream = await client.chat.completions.create(
                    model=env.llm.model, messages=messages, tools=TOOL_SCHEMAS, stream=True,
                    stream_options={"include_usage": True})
                text, calls = "", {}
                async for chunk in stream:
                    if chunk.usage is not None:
                        STREAMED[env.seed] = STREAMED.get(env.seed, 0) + chunk.usage.total_tokens
                    for choice in chunk.choices:
                        text += choice.delta.content or ""
                        for tc in choice.delta.tool_calls or ():
                            c = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                            c["id"] = tc.id or c["id"]
                            c["name"] += (tc.function and tc.function.name) or ""
                            c["arguments"] += (tc.function and tc.function.arguments) or ""
                break
            except (openai.APIConnectionError, openai.APIStatusError):
                continue
        else:
            return "model unavailable"
        if not calls:
            return text
        messages.append({"role": "assistant", "content": text or None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls.values()]})
        for c in calls.values():
            messages.append({"role": "tool", "tool_call_id": c["id"],
                             "content": run_tool(env, c["name"], c["arguments"])})
    return "too many turns"


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


# --- pydantic-ai -------------------------------------------------------------------------------------------

pydantic_ai = need("pydantic_ai")
pydantic_ai_openai = need("pydantic_ai.models.openai")
pydantic_ai_provider = need("pydantic_ai.providers.openai")


async def pydantic_ai_agent(task: str, env: Any) -> str:
    model = pydantic_ai_openai.OpenAIChatModel(env.llm.model, provider=pydantic_ai_provider.OpenAIProvider(
        openai_client=openai.AsyncOpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3)))
    agent = pydantic_ai.Agent(model, tools=soft_tools(env, asynchronous=True), system_prompt="You refund orders.",
                              retries=3)
    result = await agent.run(task)
    return str(result.output)


def test_pydantic_ai_with_the_openai_provider():
    result = run_campaign(scenario("pydantic-ai", pydantic_ai_agent))
    assert_proven(result)


async def pydantic_ai_sync_tools_agent(task: str, env: Any) -> str:
    model = pydantic_ai_openai.OpenAIChatModel(env.llm.model, provider=pydantic_ai_provider.OpenAIProvider(
        openai_client=openai.AsyncOpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3)))
    agent = pydantic_ai.Agent(model, tools=soft_tools(env), system_prompt="You refund orders.", retries=3)
    result = await agent.run(task)
    return str(result.output)


def test_pydantic_ai_with_sync_tools_run_in_anyio_worker_threads():
    result = run_campaign(scenario("pydantic-ai-sync", pydantic_ai_sync_tools_agent))
    assert_proven(result)
    assert not any("virtual time limit" in r.reason for r in result.records)


# --- LangGraph with langchain-openai -------------------------------------------------------------------------

langchain_openai = need("langchain_openai")
langchain_tools = need("langchain_core.tools")
langgraph_graph = need("langgraph.graph")
langgraph_prebuilt = need("langgraph.prebuilt")


def langgraph_agent(task: str, env: Any) -> str:
    tools = [langchain_tools.StructuredTool.from_function(fn) for fn in soft_tools(env)]
    llm = langchain_openai.ChatOpenAI(model=env.llm.model, base_url=env.llm.base_url, api_key=env.llm.api_key,
                                      max_retries=3).bind_tools(tools)
    graph = langgraph_graph.StateGraph(langgraph_graph.MessagesState)
    graph.add_node("model", lambda state: {"messages": [llm.invoke(state["messages"])]})
    graph.add_node("tools", langgraph_prebuilt.ToolNode(tools))
    graph.add_edge(langgraph_graph.START, "model")
    graph.add_conditional_edges("model", langgraph_prebuilt.tools_condition)
    graph.add_edge("tools", "model")
    out = graph.compile().invoke({"messages": [("system", "You refund orders."), ("user", task)]},
                                 {"recursion_limit": 24})
    return str(out["messages"][-1].content)


def test_langgraph_with_langchain_openai():
    result = run_campaign(scenario("langgraph", langgraph_agent))
    assert_proven(result)


# --- anthropic and openai-agents (the recipes in docs/harness.md) ----------------------------------------------

anthropic = need("anthropic")


def anthropic_agent(task: str, env: Any) -> str:
    client = anthropic.Anthropic(base_url=env.llm.root_url, api_key=env.llm.api_key, max_retries=3)
    tools = [{"name": t["function"]["name"], "description": t["function"]["description"],
              "input_schema": t["function"]["parameters"]} for t in TOOL_SCHEMAS]
    messages: list[Any] = [{"role": "user", "content": task}]
    for _ in range(10):
        response = client.messages.create(model=env.llm.model, max_tokens=1024, system="You refund orders.",
                                          messages=messages, tools=tools)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in response.content]})
        uses = [b for b in response.content if b.type == "tool_use"]
        if not uses:
            return "".join(b.text for b in response.content if b.type == "text")
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": run_tool(env, b.name, b.input)} for b in uses]})
    return "too many turns"


def test_anthropic_messages_loop():
    faults = Faults(model=ModelFaults(rate=0.3, output_rate=0.15, retry_after_s=0.01,
                                      mix={"rate_limit": 1, "overloaded": 1, "timeout": 1, "server_error": 1}),
                    drift=Drift(rate=0.15))
    result = run_campaign(scenario("anthropic", anthropic_agent, faults=faults))
    assert_proven(result)
    assert Counter(f for r in result.records for f in r.faults)["model:overloaded"] > 0  # HTTP 529


agents = need("agents")


async def openai_agents_agent(task: str, env: Any) -> str:
    agents.set_tracing_disabled(True)  # nothing may leave the machine
    model = agents.OpenAIResponsesModel(model=env.llm.model, openai_client=openai.AsyncOpenAI(
        base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3))
    agent = agents.Agent(name="refunds", instructions="You refund orders.", model=model,
                         tools=[agents.function_tool(fn) for fn in soft_tools(env)])
    result = await agents.Runner.run(agent, task, max_turns=10)
    return str(result.final_output)


def test_openai_agents_over_the_responses_api():
    result = run_campaign(scenario("openai-agents", openai_agents_agent))
    assert_proven(result)
    calls = [e for r in result.records for e in r.trace if e.kind == "model_call"]
    assert {e.data["api"] for e in calls} == {"responses"}


# --- beside pytest-httpx2 -----------------------------------------------------------------------------------

need("pytest_httpx2")
httpx2 = need("httpx2")


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
