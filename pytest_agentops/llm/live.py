"""The live model boundary: a trial's ``env.llm`` in front of a real OpenAI- or Anthropic-compatible endpoint
(``Scenario(live=LiveLLM(...))``), or in front of a cassette recorded from one.

Per HTTP attempt of the agent, in order (the same draws, keyed the same way, as the fake model's):

1. the model-API fault drawn for it: ``rate_limit``/``unavailable``/``overloaded`` (429/503/529 with
   ``retry-after``), ``server_error`` (500), ``timeout`` (the client's read timeout passes on the virtual
   clock) and ``connection_reset`` answer *instead of forwarding*, at no cost;
2. the trial's context drift, applied to the request in its own wire format (``live_drift``);
3. the per-request budget and the spend cap's reservation (prompt estimated as a third of its bytes);
4. the request forwarded (the agent's fake key replaced by the real one, ``upstream``), or answered from the
   cassette (``cassette``); recorded when recording. Its latency passes on the virtual clock, as a cassette
   keeps it (whole milliseconds, ``cassette.recorded_latency``): the measured one so rounded when forwarding,
   the entry's when replaying (never the real time a lookup takes), so a replay is the recorded trial exactly;
5. the upstream's real ``usage`` metered and priced (the model it reports), estimated with the fake's token
   rule only when it reports none; an answer other than 200 passes through to the agent as it came and is
   recorded as an ``upstream_error``, not an injected fault;
6. the output perturbation drawn for it (the reply rewritten in the client's wire format), then
   ``malformed_body`` or ``stream_cut`` breaking what the agent gets (the upstream billed it whole).

Streams pass through event for event (an answer is read whole before the agent gets its first event). A
chat stream is asked for its usage chunk (``stream_options.include_usage``), which is removed again when
the agent did not ask for it. Async clients are served on the trial loop, the real I/O in a worker thread,
so trials waiting on the upstream do not block each other and virtual time does not run during it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import hashlib
import json
import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import CassetteMiss, ConfigError, TrialAborted, UpstreamError, WireError, hide_own_frames
from ..harness.layer import LayerTrial, TrialPort
from ..harness.secrets import MIN_SECRET_LENGTH, redact_short, treat_as_secret
from ..plan import Occurrences
from ..process.http_hub import HTTP_PATCH, HUB
from ..seeding import text_key
from ..settings.model import Drift, HttpFaults, ModelFaults, ModelRecord
from ..vtime.real import real_monotonic
from . import replies, wire
from . import usage as usage_rule
from .answer_scrub import scrub_answer
from .cassette import KEPT_HEADERS, Cassette, Recorded, cassette_path, last_message, redact, request_key
from .endpoint import LLMEndpoint
from .http_faults import HttpTrial
from .live_drift import drift_body
from .model import _Stream, attempt_number
from .perturb import DriftState, perturb_reply
from .upstream import HttpUpstream, Outgoing

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..scenario import Scenario
    from ..settings.live import LiveLLM
    from ..settings.run import RunSettings

_NO_MODEL_FAULTS = ModelFaults()
_NO_DRIFT = Drift()
_AT_THE_DOOR = {"rate_limit": 429, "unavailable": 503, "overloaded": 529, "server_error": 500}
_MESSAGES = {429: "Rate limit reached (injected by pytest-agentops)", 500: "Internal server error (injected)",
             503: "Service unavailable (injected)", 529: "Overloaded (injected)"}
#: Real seconds the end of a campaign waits for its upstream threads (an upstream answering later is let go).
JOIN_S = 1.0
#: A prompt's tokens, estimated before it is sent: a third of its bytes (real tokenizers give about a quarter).
BYTES_PER_TOKEN = 3


@dataclass(slots=True)
class _Pending:
    """An attempt that goes to the upstream (or the cassette): what ``_finish`` needs once it answered."""

    out: Outgoing
    key: str
    occurrence: int
    model: str
    request: Any  # the body as forwarded (before the boundary's own include_usage), for the cassette
    last: str
    api: str | None = None
    parsed: wire.Parsed | None = None
    kind: str | None = None
    draw_key: tuple[int, int] = (0, 0)
    estimate: int = 0
    common: dict[str, Any] = field(default_factory=dict)


class LiveModel:
    """One trial's live model: answers the HTTP attempts sent to its host."""

    def __init__(self, ctx: Any, campaign: LiveCampaign, host: str):
        self.ctx = ctx
        self.campaign = campaign
        self.live = campaign.live
        faults = ctx.plan.faults
        self.faults = faults.model if faults.model is not None else _NO_MODEL_FAULTS
        self.drift = DriftState(faults.drift if faults.drift is not None else _NO_DRIFT)
        self.host = host
        self.endpoint = LLMEndpoint(f"http://{host}/v1", f"sk-agentops-live-{host.split('.')[0]}", self.live.model)
        self.requests = 0
        self.upstream_errors = 0
        self._sent = Occurrences()  # per request body: how often it was sent before (the fault draws' key)
        self._forwarded = Occurrences()  # per request key: how often it was forwarded before (the cassette's)
        self._last: tuple[str, int, bool] | None = None
        self._lock = threading.RLock()

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def _attempt(self, request: httpx.Request, digest: str) -> int:
        return attempt_number(request, digest, self._last)

    def _meter(self, inp: int, out: int, *, model: str, **event: Any) -> None:
        ctx = self.ctx
        data = {k: v for k, v in event.items() if v is not None and v != [] and k != "outcome"}
        ctx.trace.add("model_call", model, event["outcome"], input_tokens=inp, output_tokens=out, **data)
        quiet = ctx.usage_traced  # the meter must not write a second model_call event
        quiet.on = True
        try:
            ctx.meter.record(inp, out, model or "*")
        finally:
            quiet.on = False

    # -- one attempt: sync and async ----------------------------------------------------------------------------
    def handle(self, request: httpx.Request, core: Any) -> httpx.Response:
        step = self._begin(request, core)
        if isinstance(step, httpx.Response):
            return step
        return self._finish(step, self._send(step), core)

    async def ahandle(self, request: httpx.Request, core: Any) -> httpx.Response:
        step = self._begin(request, core)
        if isinstance(step, httpx.Response):
            return step
        answer = await asyncio.get_running_loop().run_in_executor(self.campaign.executor(), self._send, step)
        return self._finish(step, answer, core)

    # -- before forwarding --------------------------------------------------------------------------------------
    def _begin(self, request: httpx.Request, core: Any) -> httpx.Response | _Pending:
        ctx = self.ctx
        ctx.begin_step("model")
        path = request.url.raw_path.decode("ascii", "replace")
        path = path[len("/v1"):] if path.startswith("/v1/") else path
        api = wire.api_of(request.url.path)
        raw = request.content
        if request.method != "POST" or api is None:  # another endpoint (a model list): forwarded as it is
            body: Any = raw.decode("utf-8", "replace")
            key = request_key(request.method, path, body)
            return _Pending(self._outgoing(request, path, raw, 0), key, self._forwarded.next(key), self.live.model,
                            body, f"{request.method} {path}")
        try:
            body = json.loads(raw)
            parsed = wire.parse(api, body)
        except (ValueError, WireError) as exc:  # never forwarded: the agent's own bug, answered like the fake
            with self._lock:
                self.requests += 1
            self._meter(0, 0, model=self.live.model, outcome="bad_request", api=api, attempt=1, status=400,
                        error=redact_short(str(exc), 200))
            return httpx.Response(400, json=wire.error_body(api, 400, f"bad request: {exc}"))
        digest = hashlib.sha1(raw).hexdigest()
        raw_key = text_key(raw)
        with self._lock:
            self.requests += 1
            draw_key = (raw_key, self._sent.next(raw_key))
            attempt = self._attempt(request, digest)
            kind = ctx.plan.model_fault(*draw_key, self.faults)
            self._last = (digest, attempt, kind is not None and kind not in ("malformed_body", "stream_cut"))
        model = parsed.model or self.live.model
        common = {"api": api, "attempt": attempt, "stream": parsed.stream}
        if kind is not None:
            note = {"cut": "body"} if kind == "stream_cut" and not parsed.stream else {}
            ctx.trace.add("fault", "model", kind, attempt=attempt, **note)
        if kind in _AT_THE_DOOR or kind in ("timeout", "connection_reset"):
            return self._injected(kind, api, model, common, request, core)
        with self._lock:
            started = self.drift.draw(*ctx.plan.drift_draws(*draw_key)) if self.drift.settings.rate else None
        if started:
            ctx.trace.add("fault", "drift", started, call=draw_key[1])
        sent, drifted = drift_body(api, body, self.drift)
        common["drift"] = drifted
        forwarded = sent
        if api == "chat" and parsed.stream and not parsed.include_usage:  # to meter it; removed on the way back
            forwarded = {**sent, "stream_options": {**(sent.get("stream_options") or {}), "include_usage": True}}
        data = raw if forwarded is body else json.dumps(forwarded, ensure_ascii=False,  # as sent, if unchanged
                                                        separators=(",", ":")).encode("utf-8")
        estimate = max(1, math.ceil(len(data) / BYTES_PER_TOKEN))
        spend = ctx.service("spend")
        if spend is not None:
            spend.expect_output(replies.output_limit(api, sent))
        ctx.before_model_request(estimate, model)  # the per-request budget, the spend cap's reservation
        key = request_key("POST", path, sent, parsed=True)  # (``sent``: the parsed body, drifted or not)
        return _Pending(self._outgoing(request, path, data, estimate), key, self._forwarded.next(key), model, sent,
                        "", api, parsed, kind, draw_key, estimate, common)

    def _outgoing(self, request: httpx.Request, path: str, data: bytes, estimate: int) -> Outgoing:
        if self.campaign.replaying is not None:  # nothing is sent: the cassette keys the request by path and body
            return Outgoing(request.method, path, (), data, "authorization", estimate)
        headers = tuple((k.lower(), v) for k, v in request.headers.items())
        names = {k for k, _ in headers}
        auth = "x-api-key" if "x-api-key" in names else "api-key" if "api-key" in names else "authorization"
        query = request.url.query.decode("ascii", "replace") if request.url.query else ""
        if query and "?" not in path:
            path = f"{path}?{query}"
        return Outgoing(request.method, path, headers, data, auth, estimate)

    def _injected(self, kind: str, api: str, model: str, common: dict[str, Any], request: httpx.Request,
                  core: Any) -> httpx.Response:
        """A model-API fault answered instead of forwarding: nothing reaches the upstream, nothing is spent."""
        settings = self.faults
        if kind == "connection_reset":
            self._meter(0, 0, model=model, outcome=kind, fault=kind, **common)
            raise core.ReadError("[Errno 104] Connection reset by peer (injected)")
        if kind == "timeout":
            timeout = (request.extensions.get("timeout") or {}).get("read")
            wait = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else settings.timeout_s
            self._meter(0, 0, model=model, outcome=kind, fault=kind, **common)
            self.ctx.clock_advance(wait)
            raise core.ReadTimeout(f"no response within {wait:g}s (injected)")
        status = _AT_THE_DOOR[kind]
        self._meter(0, 0, model=model, outcome=kind, status=status, fault=kind, **common)
        ms = max(1, round(settings.retry_after_s * 1000))
        headers = {"retry-after-ms": str(ms), "retry-after": f"{settings.retry_after_s:g}"}
        return httpx.Response(status, headers=headers, json=wire.error_body(api, status, _MESSAGES[status]))

    # -- the upstream (or the cassette): in a worker thread for async clients ------------------------------------
    def _send(self, step: _Pending) -> Recorded | Exception:
        """The answer to ``step`` (never raises: an error is returned, to be raised where the agent awaits)."""
        campaign = self.campaign
        try:
            if campaign.replaying is not None:
                found = campaign.replaying.find(self.ctx.seed, step.key, step.occurrence)
                return found if found is not None else campaign.replaying.miss(step.model, self._last_message(step),
                                                                               self.ctx.seed)
            assert campaign.upstream is not None
            answer = campaign.upstream.send(step.out)
            if campaign.recording is not None:
                # the agent gets the answer as the cassette keeps it (the key and the environment's secrets taken
                # out), so that a replay is the recording to the digit: one that got the secret a replay cannot
                # give went another way (its next request missed, taken for a stale cassette)
                answer = scrub_answer(answer, step.api, self._streams(step), campaign.recording.scrub_text)
                step.last = self._last_message(step)
                campaign.recording.add(trial=self.ctx.index, seed=self.ctx.seed, key=step.key,
                                       occurrence=step.occurrence, method=step.out.method, path=step.out.path,
                                       api=step.api, model=step.model, last_message=step.last, request=step.request,
                                       answer=answer)
            return answer
        except (UpstreamError, CassetteMiss) as exc:
            return exc

    @staticmethod
    def _streams(step: _Pending) -> bool:
        return step.parsed is not None and bool(step.parsed.stream)

    @staticmethod
    def _last_message(step: _Pending) -> str:
        """The request's last message as sent (for a cassette's reader, or a miss's message)."""
        return last_message(wire.parse(step.api, step.request).messages) if step.api is not None else step.last

    # -- after it answered ---------------------------------------------------------------------------------------
    def _finish(self, step: _Pending, answer: Recorded | Exception, core: Any) -> httpx.Response:
        ctx, model = self.ctx, step.model
        secrets = self.campaign.secrets
        if isinstance(answer, CassetteMiss):
            reason = str(answer)
            ctx.trace.add("model_call", model, "cassette_miss", error=redact_short(reason, 300), **step.common)
            ctx.abort("error", reason)
            raise TrialAborted("error", reason)
        if isinstance(answer, Exception):  # the real upstream failed: the agent sees it as in production
            with self._lock:
                self.upstream_errors += 1
            self._meter(0, 0, model=model, outcome="upstream_error",
                        error=redact_short(redact(str(answer), secrets), 200), **step.common)
            if getattr(answer, "timeout", False):
                raise core.ReadTimeout(str(answer))
            raise core.ConnectError(str(answer))
        ctx.clock_advance(answer.latency_s)
        if secrets:  # an upstream echoing the key: never on to the agent, its trace or a report (nor spelt out by a
            # stream's deltas, which no one chunk holds)
            answer = scrub_answer(answer, step.api, self._streams(step), functools.partial(redact, secrets=secrets))
        headers = [(k, v) for k, v in answer.headers if k in KEPT_HEADERS]
        if step.api is None or answer.status != 200:
            if answer.status != 200 and step.api is not None:
                with self._lock:
                    self.upstream_errors += 1
                self._meter(0, 0, model=model, outcome="upstream_error", status=answer.status,
                            error=_excerpt(answer.body, secrets), **step.common)
            return httpx.Response(answer.status, headers=headers, content=answer.body)
        return self._reply(step, answer, headers, core)

    def _reply(self, step: _Pending, answer: Recorded, headers: list[tuple[str, str]], core: Any) -> httpx.Response:
        ctx, api, parsed = self.ctx, step.api, step.parsed
        assert api is not None and parsed is not None
        stream = parsed.stream
        body = answer.body if not stream or parsed.include_usage or api != "chat" else \
            replies.strip_usage_chunk(answer.body)
        reply = replies.read_reply(api, answer.body, stream)
        usage = reply.usage if reply is not None else None
        common = dict(step.common)
        if usage is None:  # the upstream reported none: the fake's token rule, said so in the trace
            message = reply.message if reply is not None else {"content": answer.body.decode("utf-8", "replace")}
            usage = (usage_rule.input_tokens(parsed.messages, parsed.tools), usage_rule.output_tokens(message))
            common["usage"] = "estimated"
        model = str((reply.meta.get("model") if reply is not None else None) or step.model or "*")
        chunks = replies.sse_events(body) if stream else [body]
        out_kind, calls = None, []
        if reply is not None:
            message = reply.message
            if self.faults.output_rate:
                draws = ctx.plan.output_draws(*step.draw_key)
                message, out_kind, details = perturb_reply(message, parsed.tools, self.faults, *draws)
                if out_kind:
                    ctx.trace.add("fault", "model_output", out_kind, call=step.draw_key[1], **details)
                    chunks = replies.render(api, message, reply, stream=stream, include_usage=parsed.include_usage,
                                            model=model)
            calls = [c["function"]["name"] for c in message.get("tool_calls") or ()]
        content_type = "text/event-stream" if stream else "application/json"
        headers = [(k, v) for k, v in headers if k != "content-type"] + [("content-type", content_type)]
        if step.kind in ("malformed_body", "stream_cut"):
            return self._broken(step.kind, chunks, stream, headers, usage, model, common, out_kind, core)
        self._meter(usage[0], usage[1], model=model, outcome="ok", status=200, output_fault=out_kind,
                    tool_calls=calls, **common)
        return httpx.Response(200, headers=headers, stream=_Stream(chunks))

    def _broken(self, kind: str, chunks: list[bytes], stream: bool, headers: list[tuple[str, str]],
                usage: tuple[int, int], model: str, common: dict[str, Any], out_kind: str | None,
                core: Any) -> httpx.Response:
        """The upstream answered whole (and billed it), but the agent gets a malformed body or a cut stream."""
        self._meter(usage[0], usage[1], model=model, outcome=kind, status=200, fault=kind, output_fault=out_kind,
                    **common)

        def cut_error() -> Exception:
            return core.RemoteProtocolError("peer closed connection without sending complete message body "
                                            "(injected)")

        if stream:
            cut = max(1, len(chunks) // 2)
            if kind == "malformed_body":
                broken = [c.replace(b"data: {", b'data: {"', 1) for c in chunks]
                return httpx.Response(200, headers=headers, stream=_Stream(broken))
            return httpx.Response(200, headers=headers, stream=_Stream(chunks, cut, cut_error))
        body = b"".join(chunks)
        half = body[: max(1, len(body) // 2)]
        if kind == "malformed_body":
            return httpx.Response(200, headers=headers, content=half)
        return httpx.Response(200, headers=[*headers, ("content-length", str(len(body)))],
                              stream=_Stream([half, body[len(half):]], 1, cut_error))


class LiveBoundary(LayerTrial):
    """One trial's live model (``env.llm``) and its transport faults on named hosts."""

    __slots__ = ("closed", "ctx", "http", "model")

    def __init__(self, ctx: TrialPort, campaign: LiveCampaign, http: HttpFaults | None):
        self.ctx = ctx
        self.closed = False
        self.model = LiveModel(ctx, campaign, HUB.new_host(ctx.seed))
        self.http = None if http is None else HttpTrial(ctx, http)
        HTTP_PATCH.acquire()
        HUB.add_host(self.model.host, self.model)
        ctx.provide("llm", self.model.endpoint)
        if self.http is not None:
            HUB.add_faults(ctx.clock, self.http.hosts, self.http)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        HUB.remove_host(self.model.host)
        if self.http is not None:
            HUB.remove_faults(self.ctx.clock)
        HTTP_PATCH.release()

    def record(self) -> ModelRecord:
        return ModelRecord(attempts=self.model.requests)


class LiveCampaign:
    """The live boundary of one campaign: the upstream (with its key, connections and rate limits) or the
    cassette it replays, the cassette it records, the worker threads of async clients."""

    name = "model"

    def __init__(self, scenario: Scenario, run: RunSettings, http: HttpFaults | None):
        live = scenario.live
        assert live is not None
        self.live: LiveLLM = live
        self.http = http
        self.concurrency = run.concurrency
        self.secrets: tuple[str, ...] = ()
        self.upstream: HttpUpstream | None = None
        self.recording: Cassette | None = None
        self.replaying: Cassette | None = None
        spec = run.cassette
        path = cassette_path(spec.directory, scenario.name) if spec is not None else None
        if spec is not None and spec.mode == "replay":
            assert path is not None
            self.replaying = Cassette.load(path)
        else:
            treat_as_secret(live.key_env)  # (its value redacted everywhere, whatever the variable's name)
            key = os.environ.get(live.key_env, "")
            if not key:
                raise ConfigError(f"live.key_env: the environment variable {live.key_env} is not set; it must hold the "
                                  f"API key of {live.base_url} (or replay a cassette: --agent-chaos-cassette=DIR)")
            # (a key shorter than MIN_SECRET_LENGTH, a local server's "1" or "k", is no secret to cut out of the
            # answers: every "k" replaced made them invalid JSON; an environment variable's value so short is not one)
            self.secrets = (key,) if len(key) >= MIN_SECRET_LENGTH else ()
            self.upstream = HttpUpstream(live, key)
            if path is not None:
                self.recording = Cassette(path, self.secrets)
        self._pool: cf.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        HTTP_PATCH.acquire()

    def executor(self) -> cf.ThreadPoolExecutor:
        """The threads that wait on the upstream for async clients (one per concurrent trial, at most 64)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = cf.ThreadPoolExecutor(max(1, min(64, self.concurrency)),
                                                   thread_name_prefix="agentops-upstream")
            return self._pool

    def attach(self, trial: TrialPort) -> LayerTrial:
        return LiveBoundary(trial, self, self.http)

    def close(self) -> None:
        try:
            if self.recording is not None:
                self.recording.write()
        finally:
            if self._pool is not None:  # the campaign returns with its threads gone, but never hangs on an upstream
                self._pool.shutdown(wait=False, cancel_futures=True)
                deadline = real_monotonic() + JOIN_S
                for thread in list(getattr(self._pool, "_threads", ())):
                    thread.join(max(0.0, deadline - real_monotonic()))
            if self.upstream is not None:
                self.upstream.close()
            HTTP_PATCH.release()


def _excerpt(body: bytes, secrets: Iterable[str]) -> str:
    """The start of an upstream's error answer, as traced: redacted (the live key, then the environment's
    secrets) before it is cut to 200 characters, never after (a review: an upstream echoing the prompt left 84
    of a token's 95 characters at the cut). At most the first 64 KiB are read."""
    return redact_short(redact(body[:65536].decode("utf-8", "replace"), secrets), 200)
