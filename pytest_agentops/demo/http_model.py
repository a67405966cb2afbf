"""The reference agents' model over HTTP: the demo policy served by the trial's fake LLM (``env.llm``).

``HttpModel`` posts OpenAI chat-completions requests with httpx to ``env.llm.base_url`` and retries what a
real SDK retries (429, 5xx, timeouts, connection resets; here also a malformed body or a cut stream),
honouring ``retry-after-ms``/``retry-after``, backing off on the trial's virtual clock (free in wall time).
The fake meters every attempt, so its replies come back ``metered=True``. Scenarios that use these agents
serve ``pytest_agentops.demo:policy`` as their ``llm:``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import AgentOpsError
from .agents import ModelReply, make_agent

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
BACKOFF_S = 0.5  # first backoff without a retry-after header: 0.5, 1, 2 s (virtual), no jitter

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def shared_client() -> httpx.Client:
    """One httpx client for every trial (making one costs ~30 ms of TLS set-up; requests are thread-safe)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(timeout=30.0)
        return _client


class ModelUnavailable(AgentOpsError):
    """The model API kept failing after every retry."""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / scale
        except (KeyError, ValueError):
            continue
    return None


class HttpModel:
    """``model(messages, tools) -> ModelReply`` over HTTP to ``env.llm`` (OpenAI chat completions).

    ``max_retries`` retries per call; when they are spent, ``escalate=True`` hands the task to a human
    (``env.escalate``), otherwise ``ModelUnavailable`` is raised.
    """

    def __init__(self, env: Any, *, max_retries: int = 2, escalate: bool = True,
                 client: httpx.Client | None = None):
        if env.llm is None:
            raise AgentOpsError("HttpModel needs a fake model: give the scenario an llm (e.g. llm: "
                                "pytest_agentops.demo:policy)")
        self.env = env
        self.max_retries = max_retries
        self.escalate = escalate
        self.client = client or shared_client()

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        llm = self.env.llm
        body = {"model": llm.model, "messages": messages, "tools": tools}
        problem = ""
        for attempt in range(self.max_retries + 1):
            wait = BACKOFF_S * 2**attempt
            try:
                response = self.client.post(f"{llm.base_url}/chat/completions", json=body, headers={
                    "authorization": f"Bearer {llm.api_key}", "x-stainless-retry-count": str(attempt)})
                if response.status_code in RETRY_STATUSES:
                    problem = f"HTTP {response.status_code}"
                    wait = _retry_after(response.headers) or wait
                else:
                    response.raise_for_status()
                    data = response.json()
                    message = data["choices"][0]["message"]
                    usage = data.get("usage") or {}
                    return ModelReply(message, int(usage.get("prompt_tokens", 0)),
                                      int(usage.get("completion_tokens", 0)), str(data.get("model", llm.model)),
                                      metered=True)
            except (httpx.TransportError, ValueError, KeyError, IndexError) as exc:  # reset, timeout, bad JSON
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_retries:
                self.env.clock.sleep(wait)
        reason = f"the model API failed {self.max_retries + 1} times ({problem})"
        if self.escalate:
            self.env.escalate(reason)
        raise ModelUnavailable(reason)

    def __repr__(self) -> str:
        return f"HttpModel({self.env.llm!r}, max_retries={self.max_retries})"


def http_model(env: Any) -> HttpModel:
    """The careful agents' model factory: 2 retries per call, then escalate."""
    return HttpModel(env)


def naive_http_model(env: Any) -> HttpModel:
    """The naive agents' model factory: no retry, a failure is an exception."""
    return HttpModel(env, max_retries=0, escalate=False)


#: The careful reference agent, its model behind ``env.llm`` (the scenario serves the demo policy).
careful_http_agent = make_agent(http_model, careful=True, name="careful_http_agent")
#: The naive reference agent, its model behind ``env.llm``.
naive_http_agent = make_agent(naive_http_model, careful=False, name="naive_http_agent")
