"""The model boundary: a fake LLM per trial over HTTP, or a live one (``LiveLLM``: a real endpoint behind the same
faults, with cassettes) (OpenAI chat completions, Anthropic messages, OpenAI
responses), served through respx for httpx and httpx2 clients; policies; model-API faults, stochastic
outputs and context drift; transport faults for the HTTP hosts tools call; the ``context_utilization``
metric.

Quick use::

    from pytest_agentops import Scenario, Faults
    from pytest_agentops.llm import FakeLLM, ModelFaults, Drift, call, call_tools_then_answer

    Scenario(..., llm=FakeLLM(call_tools_then_answer(call("lookup_order", order_id=42), answer="Done")),
             faults=Faults.profile("mid", drift=Drift(rate=0.1)))

and in the agent: ``openai.OpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key)``.
"""

from __future__ import annotations

from ..errors import hide_own_frames
from ..settings.live import LiveLLM
from ..settings.model import (
    API_FAULT_KINDS,
    DRIFT_KINDS,
    HTTP_FAULT_KINDS,
    OUTPUT_FAULT_KINDS,
    Drift,
    FakeLLM,
    HttpFaults,
    ModelFaults,
)
from .endpoint import LLMEndpoint
from .policy import ModelRequest, Reply, ToolCall, call, call_tools_then_answer, default_used, rule, scripted
from .usage import input_tokens, output_tokens, tokens

__tracebackhide__ = hide_own_frames

__all__ = [
    "API_FAULT_KINDS",
    "DRIFT_KINDS",
    "HTTP_FAULT_KINDS",
    "OUTPUT_FAULT_KINDS",
    "Drift",
    "FakeLLM",
    "HttpFaults",
    "LLMEndpoint",
    "LiveLLM",
    "ModelFaults",
    "ModelRequest",
    "Reply",
    "ToolCall",
    "call",
    "call_tools_then_answer",
    "default_used",
    "input_tokens",
    "output_tokens",
    "rule",
    "scripted",
    "tokens",
]
