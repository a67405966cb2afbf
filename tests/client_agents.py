"""Agents built on the real client SDKs (openai sync and async streaming, pydantic-ai, LangGraph with
langchain-openai, anthropic, openai-agents), shared by the client tests and the reproducibility tests.

These SDKs send through httpx2; they are the optional extra ``clients``. Locally a missing one skips the tests
that use it; in CI (``CI`` set) a missing one is an error, so these tests never silently stop running.
The SDKs are imported here, outside any trial (importing pydantic.v1 while a campaign holds the virtual
clock's datetime stand-ins fails).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections import Counter
from typing import Any

import pytest
from isolated_llm_support import chat_agent, run_tool, stream_agent

from pytest_agentops import Faults, Scenario
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


def openai_sync_agent(task: str, env: Any) -> str:
    client = openai.OpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3)
    return chat_agent(task, env, client, tools=TOOL_SCHEMAS, turns=10)


STREAMED: dict[int, int] = {}


async def openai_async_streaming_agent(task: str, env: Any) -> str:
    def counted(usage: Any) -> None:
        STREAMED[env.seed] = STREAMED.get(env.seed, 0) + usage.total_tokens

    return await stream_agent(task, env, tools=TOOL_SCHEMAS, turns=10, on_usage=counted)


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


async def pydantic_ai_sync_tools_agent(task: str, env: Any) -> str:
    model = pydantic_ai_openai.OpenAIChatModel(env.llm.model, provider=pydantic_ai_provider.OpenAIProvider(
        openai_client=openai.AsyncOpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3)))
    agent = pydantic_ai.Agent(model, tools=soft_tools(env), system_prompt="You refund orders.", retries=3)
    result = await agent.run(task)
    return str(result.output)


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


agents = need("agents")


async def openai_agents_agent(task: str, env: Any) -> str:
    agents.set_tracing_disabled(True)  # nothing may leave the machine
    model = agents.OpenAIResponsesModel(model=env.llm.model, openai_client=openai.AsyncOpenAI(
        base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=3))
    agent = agents.Agent(name="refunds", instructions="You refund orders.", model=model,
                         tools=[agents.function_tool(fn) for fn in soft_tools(env)])
    result = await agents.Runner.run(agent, task, max_turns=10)
    return str(result.final_output)


need("pytest_httpx2")


httpx2 = need("httpx2")
