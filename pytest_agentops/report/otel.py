"""The trials as OpenTelemetry traces, in the GenAI semantic conventions (the optional extra ``otel``).

Each trial is one trace: an ``invoke_agent {scenario}`` span (``gen_ai.operation.name=invoke_agent``,
``gen_ai.agent.name``), with a ``chat {model}`` CLIENT span per model call (``gen_ai.request.model``,
``gen_ai.provider.name``, ``gen_ai.usage.input_tokens``/``output_tokens``, ``error.type`` when the attempt
failed) and an ``execute_tool {tool}`` span per tool call (``gen_ai.tool.name``, ``gen_ai.tool.type``,
``gen_ai.tool.call.arguments``, ``error.type``), plus the harness's own attributes under ``agentops.*`` (trial,
seeds, outcome, the fault a call got, confirmations, escalation) and span events for faults, confirmations,
checkpoints, crashes, escalations, budget trips and violations.

Spans are built after the campaign from the trials' traces (``report.campaign_data`` with every trace): the
same scrubbed values as the JSON report, never a raw object, and nothing is measured while trials run.
Virtual time places them: a trial starts at the export's wall-clock time and each event is at its virtual
offset (a call is a point in virtual time: its span has no duration). They are exported with the SDK to an
OTLP endpoint named by the standard ``OTEL_EXPORTER_OTLP_*`` variables (OTLP/HTTP protobuf) and/or to a file
of OTLP/JSON, one ``ExportTraceServiceRequest`` per line (what the OpenTelemetry Collector's file exporter
writes and its ``otlpjsonfile`` receiver reads). No global tracer provider is set: a test session's own
OpenTelemetry set-up is left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._version import __version__
from ..errors import hide_own_frames
from ..process.umask import as_ordinary_file
from .campaign_data import replay_hint

__tracebackhide__ = hide_own_frames

SCOPE = "pytest_agentops"
#: Trace events shown as span events of the trial's span (model and tool calls are spans of their own).
_EVENTS = {"fault": "agentops.fault", "confirmation": "agentops.confirmation", "checkpoint": "agentops.checkpoint",
           "crash": "agentops.crash", "resume": "agentops.resume", "escalation": "agentops.escalation",
           "escalation_trigger": "agentops.escalation_trigger", "budget": "agentops.budget",
           "alert": "agentops.budget_alert", "violation": "agentops.violation", "confidence": "agentops.confidence",
           "agent": "agentops.agent", "outcome": "agentops.outcome"}


def _attr(value: Any) -> Any:
    """An attribute value OpenTelemetry accepts: str, bool, int, float or a list of one of them (else JSON)."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return json.dumps(value, sort_keys=True, default=str)


def _flat(prefix: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{k}": _attr(v) for k, v in data.items() if v is not None}


def _utf8(value: Any) -> Any:
    """``value`` (JSON data) with every string UTF-8 can write: a lone surrogate (a model name or a tool argument
    an agent made up) written as its escape, ``\\udcff``, where the exporter's protobuf refused the whole file."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_utf8(k): _utf8(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utf8(v) for v in value]
    return value


class _Trial:
    """Writes the spans of one trial from its record's JSON form."""

    def __init__(self, tracer: trace.Tracer, campaign: dict[str, Any], record: dict[str, Any], base_ns: int):
        self.tracer, self.campaign, self.record, self.base = tracer, campaign, _utf8(record), base_ns

    def at(self, t: float) -> int:
        return self.base + round(t * 1e9)

    def write(self) -> None:
        c, r = self.campaign, self.record
        events = r.get("trace") or []
        end_t = max([r.get("duration_s") or 0.0] + [e["t"] for e in events])
        attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": c["scenario"],
                 "agentops.scenario": c["scenario"], "agentops.campaign.seed": c["seed"],
                 "agentops.trial.index": r["index"], "agentops.trial.seed": str(r["seed"]),
                 "agentops.outcome": r["outcome"], "agentops.tokens": r.get("tokens", 0),
                 "gen_ai.usage.input_tokens": r.get("input_tokens", 0),
                 "gen_ai.usage.output_tokens": r.get("output_tokens", 0),
                 "agentops.cost_usd": float(r.get("cost_usd", 0.0)), "agentops.tool_calls": r.get("tool_calls", 0),
                 "agentops.faults": list(r.get("faults", [])), "agentops.violations": list(r.get("violations", [])),
                 "agentops.escalated": r.get("escalated_at_s") is not None,
                 "agentops.replay_command": replay_hint(c, r)}
        if r.get("reason"):
            attrs["agentops.reason"] = r["reason"]
        if r.get("trace_kept") is False:  # past the campaign's trace budget: a span alone, its replay command
            attrs["agentops.trace_kept"] = False  # makes the trace again (``engine.trial.CAMPAIGN_TRACE_EVENTS``)
        if r.get("profile") or c.get("profile"):
            attrs["agentops.profile"] = c.get("profile") or ""
        root = self.tracer.start_span(f"invoke_agent {c['scenario']}", kind=SpanKind.INTERNAL,
                                      start_time=self.at(0.0), attributes=attrs)
        if r["outcome"] != "completed" or r.get("violations"):
            root.set_attribute("error.type", r["outcome"] if r["outcome"] != "completed" else "violation")
            root.set_status(Status(StatusCode.ERROR, r.get("reason") or ", ".join(r.get("violations", []))))
        context = trace.set_span_in_context(root)
        latency: dict[str, float] = {}
        for e in events:
            kind, data = e["kind"], e.get("data") or {}
            if kind == "model_call":
                self._model(e, data, context)
            elif kind == "tool_call":
                self._tool(e, data, context, latency.pop(e["name"], None))
            else:
                if kind == "fault" and e["outcome"] == "latency":
                    latency[e["name"]] = data.get("latency_s", 0.0)
                if kind == "escalation":
                    root.set_attribute("agentops.escalation.reason", str(data.get("reason", "")))
                root.add_event(_EVENTS.get(kind, f"agentops.{kind}"),
                               {"agentops.name": e["name"], "agentops.result": e["outcome"],
                                **_flat("agentops.", data)}, timestamp=self.at(e["t"]))
        root.end(end_time=self.at(end_t))

    def _model(self, e: dict[str, Any], data: Mapping[str, Any], context: Any) -> None:
        model = e["name"]
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                 "gen_ai.provider.name": "pytest_agentops.fake_llm" if "api" in data else "pytest_agentops.metered",
                 "gen_ai.usage.input_tokens": e.get("input_tokens", 0),
                 "gen_ai.usage.output_tokens": e.get("output_tokens", 0)}
        if e["outcome"] == "ok":
            attrs["gen_ai.response.model"] = model
        for key, name in (("attempt", "agentops.attempt"), ("api", "agentops.api"), ("stream", "agentops.stream")):
            if key in data:
                attrs[name] = _attr(data[key])
        if data.get("status") is not None:
            attrs["http.response.status_code"] = data["status"]
        if data.get("fault"):
            attrs["agentops.fault.kind"] = data["fault"]
        if data.get("output_fault"):
            attrs["agentops.fault.output"] = data["output_fault"]
        if data.get("drift"):
            attrs["agentops.fault.drift"] = _attr(data["drift"])
        if data.get("tool_calls"):
            attrs["agentops.tool_calls"] = _attr(data["tool_calls"])
        span = self.tracer.start_span(f"chat {model}", context=context, kind=SpanKind.CLIENT,
                                      start_time=self.at(e["t"]), attributes=attrs)
        self._end(span, e, data)

    def _end(self, span: Any, e: dict[str, Any], data: Mapping[str, Any]) -> None:
        """End a call's span at its event's time, marked as an error unless the call went through."""
        if e["outcome"] != "ok":
            span.set_attribute("error.type", e["outcome"])
            span.set_status(Status(StatusCode.ERROR, str(data.get("error") or e["outcome"])))
        span.end(end_time=self.at(e["t"]))

    def _tool(self, e: dict[str, Any], data: Mapping[str, Any], context: Any, latency_s: float | None) -> None:
        attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": e["name"], "gen_ai.tool.type": "function",
                 "agentops.tool.destructive": bool(data.get("destructive")), "agentops.tool.outcome": e["outcome"]}
        if "arguments" in data:
            attrs["gen_ai.tool.call.arguments"] = json.dumps(data["arguments"], sort_keys=True, default=str)
        if "result" in data:
            attrs["gen_ai.tool.call.result"] = _attr(data["result"])
        if latency_s is not None:
            attrs["agentops.fault.latency_s"] = float(latency_s)
        if e["outcome"] not in ("ok", "blocked", "denied_scope", "bad_arguments"):
            attrs["agentops.fault.kind"] = e["outcome"]
        span = self.tracer.start_span(f"execute_tool {e['name']}", context=context, kind=SpanKind.INTERNAL,
                                      start_time=self.at(e["t"]), attributes=attrs)
        self._end(span, e, data)


def write_spans(tracer: trace.Tracer, campaigns: Iterable[dict[str, Any]], base_ns: int | None = None) -> int:
    """Start and end the spans of every trial of these campaigns' report data; returns the number of trials."""
    from ..harness import secrets

    secrets.refresh()  # the environment as it is now: every string is redacted once more, as in the JSON report
    base = time.time_ns() if base_ns is None else base_ns
    count = 0
    for campaign in campaigns:
        head = secrets.redact_data({k: v for k, v in campaign.items() if k != "records"})
        for record in campaign.get("records", []):
            _Trial(tracer, head, secrets.redact_data(record), base).write()
            count += 1
    return count


def otlp_json_lines(spans: Sequence[ReadableSpan]) -> str:
    """Spans as one line of OTLP/JSON (an ``ExportTraceServiceRequest``): lowerCamelCase keys, enums as
    integers, trace and span ids as hex strings (the OTLP/JSON rules, which differ from protobuf's JSON)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    data = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource in data.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = _hex(span[key])
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        if key in link:
                            link[key] = _hex(link[key])
    return json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"


def _hex(b64: str) -> str:
    import base64

    return base64.b64decode(b64).hex()


class OtlpJsonFileExporter(SpanExporter):
    """Collects spans and writes them, at shutdown, as OTLP/JSON lines (atomically: temp file, then rename)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        import tempfile

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
                if self.spans:
                    fh.write(otlp_json_lines(self.spans))
            as_ordinary_file(tmp)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def provider(exporters: Sequence[SpanExporter]) -> TracerProvider:
    """A tracer provider of its own (not the global one) with a span processor per exporter; the resource's
    ``service.name`` is ``pytest-agentops`` unless ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` say."""
    own = {} if os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", "") else {"service.name": "pytest-agentops"}
    limits = SpanLimits(max_events=None if os.environ.get("OTEL_SPAN_EVENT_COUNT_LIMIT") else 100_000)
    tp = TracerProvider(resource=Resource.create(own), span_limits=limits, shutdown_on_exit=False)
    for exporter in exporters:
        tp.add_span_processor(SimpleSpanProcessor(exporter) if isinstance(exporter, OtlpJsonFileExporter)
                              else _batch(exporter))
    return tp


class _Heard(logging.Handler):
    """The warnings and errors logged on the exporting thread, as text."""

    def __init__(self, said: list[str]):
        super().__init__(logging.WARNING)
        self.said = said
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            with contextlib.suppress(Exception):
                self.said.append(record.getMessage())


class _Watched(SpanExporter):
    """An exporter whose failed exports are kept (``failures``): the SDK only logs them, and pytest's logging
    swallows that log at the session's end (a wrong OTLP endpoint lost every span without a word)."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.failures: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        said: list[str] = []
        heard = _Heard(said)
        logger = logging.getLogger("opentelemetry")  # (where the exporter says why, before it returns FAILURE)
        logger.addHandler(heard)
        try:
            result = self.inner.export(spans)
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            logger.removeHandler(heard)
        if result is not SpanExportResult.SUCCESS:
            self.failures.append(said[-1] if said else f"export {result.name.lower()}")
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _batch(exporter: SpanExporter) -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter)


def export(campaigns: Sequence[dict[str, Any]], *, file: str | os.PathLike[str] | None = None,
           endpoint: bool = False, exporters: Sequence[SpanExporter] = (), failures: list[str] | None = None) -> int:
    """Export every trial of these campaigns' report data (each with every trace) to the OTLP/JSON ``file``,
    to the OTLP endpoint of the ``OTEL_EXPORTER_OTLP_*`` variables (``endpoint``) and to ``exporters``;
    returns the number of trials exported. ``failures``: given a list, each failed export of the endpoint's is
    added to it (what the SDK says only in its log)."""
    sinks = list(exporters)
    if file is not None:
        sinks.append(OtlpJsonFileExporter(file))
    watched = None
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        watched = _Watched(OTLPSpanExporter())
        sinks.append(watched)
    tp = provider(sinks)
    try:
        count = write_spans(tp.get_tracer(SCOPE, __version__), campaigns)
        tp.force_flush()
    finally:
        tp.shutdown()
        if watched is not None and failures is not None:
            failures.extend(watched.failures)
    return count
