"""One trial's fake model: how it answers each HTTP attempt sent to its host.

Per attempt, in order: the model-API fault drawn for it (429/5xx/timeout/reset answer without asking the
policy), the context drift (new drift maybe starts, every active drift is applied), the per-request
budget check, the policy's reply, the stochastic output perturbation, then the response in the client's
wire format (maybe a malformed body or a stream cut mid-way). Each attempt is metered into the trial's
meter and recorded as one ``model_call`` trace event (attempt number, HTTP status, fault); every fault,
output perturbation and drift also gets its own ``fault`` event (so it shows in ``TrialRecord.faults``).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import TrialAborted, WireError, hide_own_frames
from ..harness.secrets import redact_short
from ..plan import Occurrences, fault_id
from ..process.trial_random import ACTIVE_RANDOM, POLICY, TrialRandom
from ..seeding import text_key
from ..settings.model import Drift, ModelFaults
from . import usage as usage_rule
from . import wire
from .endpoint import LLMEndpoint
from .perturb import DriftState, perturb_reply
from .policy import ModelRequest, Reply, default_used, respond

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..harness.context import TrialContext

_NO_MODEL_FAULTS = ModelFaults()
_NO_DRIFT = Drift()
_AT_THE_DOOR = {"rate_limit": 429, "unavailable": 503, "overloaded": 529}  # refused before the model runs
_MESSAGES = {429: "Rate limit reached (injected by pytest-agentops)", 500: "Internal server error (injected)",
             503: "Service unavailable (injected)", 529: "Overloaded (injected)"}


def attempt_number(request: httpx.Request, digest: str, last: tuple[str, int, bool] | None) -> int:
    """Which attempt of a request this is (1 for the first): the SDK's retry-count header when it sends one,
    else one more than the previous attempt when that was the same body and it failed (``last``: body digest,
    attempt, failed)."""
    header = request.headers.get("x-stainless-retry-count")
    if header is not None and header.isdigit():
        return int(header) + 1
    return last[1] + 1 if last is not None and last[0] == digest and last[2] else 1


class _Stream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Response bytes, sync or async; with ``error``, the stream breaks after ``cut`` chunks."""

    def __init__(self, chunks: list[bytes], cut: int | None = None, error: Callable[[], Exception] | None = None):
        self.chunks = chunks
        self.cut = cut
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if self.cut is not None and i >= self.cut:
                assert self.error is not None
                raise self.error()
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self:
            yield chunk


class TrialModel:
    """The fake model of one trial: answers the HTTP attempts sent to its host."""

    def __init__(self, policy: Any, ctx: TrialContext, *, model: str, latency_s: float, host: str,
                 faults: ModelFaults | None, drift: Drift | None):
        self.policy = policy
        self.ctx = ctx
        self.random = TrialRandom(ctx.seed, POLICY)  # what the policy's ``random`` draws come from
        self.model = model
        self.latency_s = latency_s
        self.host = host
        self.faults = faults if faults is not None else _NO_MODEL_FAULTS
        self.drift = DriftState(drift if drift is not None else _NO_DRIFT)
        self.endpoint = LLMEndpoint(f"http://{host}/v1", f"sk-agentops-fake-{host.split('.')[0]}", model)
        self.requests = 0  # HTTP attempts received
        self.calls = 0  # attempts that reached the model (numbers the replies' ids)
        self._sent = Occurrences()  # per request body: how often it was sent before (retries)
        self.turn = 0  # replies delivered whole
        self.prompt_tokens = 0  # context_utilization: all prompt tokens the policy saw ...
        self.used_tokens = 0  # ... and those of the messages it relied on
        self._last: tuple[str, int, bool] | None = None  # (body digest, attempt, failed) of the previous attempt
        self._lock = threading.RLock()

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def _attempt(self, request: httpx.Request, digest: str) -> int:
        return attempt_number(request, digest, self._last)

    def _meter(self, inp: int, out: int, *, model: str | None = None, **event: Any) -> None:
        """One ``model_call`` event with the attempt's details, and its tokens into the trial's meter (priced
        as the model the request named, else the endpoint's model)."""
        ctx = self.ctx
        model = model or self.model
        data = {k: v for k, v in event.items() if v is not None and v != [] and k != "outcome"}
        ctx.trace.add("model_call", model, event["outcome"], input_tokens=inp, output_tokens=out, **data)
        quiet = ctx.usage_traced  # the meter must not write a second model_call event
        quiet.on = True
        try:
            ctx.meter.record(inp, out, model)
        finally:
            quiet.on = False

    def utilization(self) -> float | None:
        """Tokens of the prompt messages the policy relied on, over all prompt tokens it saw (this trial)."""
        return None if not self.prompt_tokens else self.used_tokens / self.prompt_tokens

    # -- one attempt ------------------------------------------------------------------------------------------
    def handle(self, request: httpx.Request, core: Any) -> httpx.Response:
        """Answer one HTTP attempt; ``core`` is ``httpcore`` or ``httpcore2`` (whose errors the client maps)."""
        ctx = self.ctx
        ctx.begin_step("model")
        api = wire.api_of(request.url.path)
        if request.method != "POST" or api is None:
            return httpx.Response(404, json={"error": {"message": f"the fake model serves POST /v1/chat/completions, "
                                                                  f"/v1/messages and /v1/responses, not "
                                                                  f"{request.method} {request.url.path}",
                                                       "type": "invalid_request_error"}})
        raw = request.content
        try:
            body = json.loads(raw)
            parsed = wire.parse(api, body)
        except (ValueError, WireError) as exc:
            with self._lock:
                self.requests += 1
            self._meter(0, 0, outcome="bad_request", api=api, attempt=1, status=400, error=redact_short(str(exc), 200))
            return httpx.Response(400, json=wire.error_body(api, 400, f"bad request: {exc}"))
        digest = hashlib.sha1(raw).hexdigest()
        key = text_key(raw)  # the draws of this attempt are keyed by its body and how often it was sent before
        with self._lock:
            return self._serve(request, core, api, parsed, digest, (key, self._sent.next(key)))

    def _serve(self, request: httpx.Request, core: Any, api: str, parsed: wire.Parsed, digest: str,
               draw_key: tuple[int, int]) -> httpx.Response:
        ctx, settings = self.ctx, self.faults
        self.requests += 1
        attempt = self._attempt(request, digest)
        kind = ctx.plan.model_fault(*draw_key, settings)  # no draw unless faults can fire (a cheap fault-free fake)
        kind_note = "body" if kind == "stream_cut" and not parsed.stream else None  # a plain body is cut instead
        model = parsed.model or self.model
        common = {"model": model, "api": api, "attempt": attempt, "stream": parsed.stream}
        self._last = (digest, attempt, kind is not None)
        if kind is not None:
            ctx.trace.add("fault", "model", kind, attempt=attempt, fid=fault_id("model", *draw_key),
                          **({"cut": kind_note} if kind_note else {}))

        # faults answered at the door: the model never sees the prompt, no tokens
        if kind in _AT_THE_DOOR:
            status = _AT_THE_DOOR[kind]
            self._meter(0, 0, outcome=kind, status=status, fault=kind, **common)
            ms = max(1, round(settings.retry_after_s * 1000))
            headers = {"retry-after-ms": str(ms), "retry-after": f"{settings.retry_after_s:g}"}
            return httpx.Response(status, headers=headers, json=wire.error_body(api, status, _MESSAGES[status]))
        if kind == "connection_reset":
            self._meter(0, 0, outcome=kind, status=None, fault=kind, **common)
            raise core.ReadError("[Errno 104] Connection reset by peer (injected)")

        # the prompt reaches the model: drift, budget, (policy)
        call = self.calls
        self.calls += 1
        drift_id = fault_id("drift", *draw_key)
        started = self.drift.draw(*ctx.plan.drift_draws(*draw_key)) \
            if self.drift.settings.rate and ctx.plan.admit(drift_id) else None
        if started:
            ctx.trace.add("fault", "drift", started, call=call, fid=drift_id)
        messages, drifted, injected = self.drift.apply(parsed.messages)
        texts = [usage_rule.canonical(m) for m in messages]  # (each message encoded once, for both counts)
        inp = usage_rule.prompt_tokens(texts, parsed.tools)
        ctx.before_model_request(inp, model)  # the per-request budget
        if self.latency_s:
            ctx.clock_advance(self.latency_s)
        common["drift"] = drifted
        if kind == "timeout":
            timeout = (request.extensions.get("timeout") or {}).get("read")
            wait = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else settings.timeout_s
            self._meter(inp, 0, outcome=kind, status=None, fault=kind, **common)
            ctx.clock_advance(wait)
            raise core.ReadTimeout(f"no response within {wait:g}s (injected)")
        if kind == "server_error":
            self._meter(inp, 0, outcome=kind, status=500, fault=kind, **common)
            ms = max(1, round(settings.retry_after_s * 1000))
            return httpx.Response(500, headers={"retry-after-ms": str(ms)},
                                  json=wire.error_body(api, 500, _MESSAGES[500]))

        model_request = ModelRequest(messages=tuple(messages), tools=parsed.tools, model=model, api=api,
                                     turn=self.turn, call=call, stream=parsed.stream)
        drawing = ACTIVE_RANDOM.set(self.random)  # the policy's ``random`` draws: a stream of its own
        try:
            reply = respond(self.policy, model_request)
        except Exception as exc:  # a bug in the test's policy: the trial is an error, never a retried 5xx
            reason = f"the fake model's policy raised {type(exc).__name__}: {exc}"
            ctx.trace.add("model_call", model, "policy_error", error=redact_short(reason, 300),
                          **{k: v for k, v in common.items() if k != "model"})
            ctx.abort("error", reason)
            raise TrialAborted("error", reason) from exc
        finally:
            ACTIVE_RANDOM.reset(drawing)
        message = self._message(reply, call)
        out_kind, details = None, {}
        output_id = fault_id("output", *draw_key)
        if settings.output_rate and ctx.plan.admit(output_id):
            message, out_kind, details = perturb_reply(message, parsed.tools, settings,
                                                       *ctx.plan.output_draws(*draw_key))
        if out_kind:
            ctx.trace.add("fault", "model_output", out_kind, call=call, fid=output_id, **details)
        used = reply.used if reply.used is not None else \
            tuple(i for i in default_used(messages) if i not in injected)
        sizes = [usage_rule.tokens(text) for text in texts]
        self.prompt_tokens += sum(sizes)
        self.used_tokens += sum(sizes[i] for i in set(used) if 0 <= i < len(sizes))
        out = usage_rule.output_tokens(message)
        response = self._render(api, parsed, model, message, call, (inp, out))
        if kind in ("malformed_body", "stream_cut"):
            return self._broken(kind, response, inp, out, core, common, out_kind)
        self.turn += 1
        self._meter(inp, out, outcome="ok", status=200, fault=None, output_fault=out_kind,
                    tool_calls=[c["function"]["name"] for c in message.get("tool_calls") or ()], **common)
        return response

    def _message(self, reply: Reply, call: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [{"id": c.id or f"call_{call}_{i}", "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments_json}}
                                     for i, c in enumerate(reply.tool_calls)]
        return message

    def _render(self, api: str, parsed: wire.Parsed, model: str, message: Mapping[str, Any], call: int,
                usage: tuple[int, int]) -> httpx.Response:
        rid = f"agentops-t{self.ctx.index}-{call}"  # deterministic: the host's number is not
        created = int(self.ctx.clock.now())
        if parsed.stream:
            if api == "chat":
                events = wire.chat_sse(message, rid=rid, model=model, created=created, usage=usage,
                                       include_usage=parsed.include_usage)
            elif api == "messages":
                events = wire.messages_sse(message, rid=rid, model=model, usage=usage)
            else:
                events = wire.responses_sse(message, rid=rid, model=model, created=created, usage=usage)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Stream(events))
        if api == "chat":
            body = wire.chat_body(message, rid=rid, model=model, created=created, usage=usage)
        elif api == "messages":
            body = wire.messages_body(message, rid=rid, model=model, usage=usage)
        else:
            body = wire.responses_body(message, rid=rid, model=model, created=created, usage=usage)
        return httpx.Response(200, json=body)

    def _broken(self, kind: str, response: httpx.Response, inp: int, out: int, core: Any,
                common: dict[str, Any], out_kind: str | None) -> httpx.Response:
        """The reply was generated (metered) but does not arrive whole: a malformed body or a cut stream."""
        stream = response.stream
        if isinstance(stream, _Stream):  # SSE: cut after half of the events
            chunks = stream.chunks
            cut = max(1, len(chunks) // 2)
            billed = min(out, max(1, math.ceil(out * cut / len(chunks))))
            self._meter(inp, billed, outcome=kind, status=200, fault=kind, output_fault=out_kind, **common)
            if kind == "malformed_body":  # a stream whose events carry broken JSON, then ends
                broken = [c.replace(b"data: {", b"data: {\"", 1) for c in chunks]
                return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Stream(broken))
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  stream=_Stream(chunks, cut, lambda: core.RemoteProtocolError(
                                      "peer closed connection without sending complete message body (injected)")))
        body = response.read()
        half = body[: max(1, len(body) // 2)]
        self._meter(inp, out if kind == "malformed_body" else max(1, out // 2), outcome=kind, status=200, fault=kind,
                    output_fault=out_kind, **common)
        headers = {"content-type": "application/json"}
        if kind == "malformed_body":
            return httpx.Response(200, headers=headers, content=half)
        return httpx.Response(200, headers={**headers, "content-length": str(len(body))},
                              stream=_Stream([half, body[len(half):]], 1, lambda: core.RemoteProtocolError(
                                  "peer closed connection without sending complete message body (injected)")))
