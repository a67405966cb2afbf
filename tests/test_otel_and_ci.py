"""OpenTelemetry export (the ``otel`` extra) and the CI conventions: the trials' GenAI spans read back from the
SDK's in-memory exporter, from the OTLP/JSON file ``--agent-chaos-otel`` writes (parsed with the OTLP protobuf
model) and from a real OTLP/HTTP endpoint named by ``OTEL_EXPORTER_OTLP_ENDPOINT``; JUnit XML properties per
campaign; ``agentops-gate --markdown`` appending to ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import base64
import json
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pytest_agentops import FakeLLM, Faults, Scenario, ToolFaults, run_campaign, tool
from pytest_agentops.demo import TOOLS, Shop, careful_http_agent, policy, refund_done
from pytest_agentops.report.campaign_data import campaign_data
from pytest_agentops.report.otel import export

CONFTEST = '''
from pytest_agentops import Faults, Scenario, ToolFaults, tool

class Shop:
    def __init__(self):
        self.refunded = 0

@tool
def refund(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded += 1
    return "refunded"

def agent(task, env):
    env.record_usage(input_tokens=50, output_tokens=5, model="gpt-4o-mini")
    return env.tools["refund"](1)

S = Scenario(name="refund", agent=agent, task="t", world=Shop, tools=[refund],
             check=lambda world, output: world.refunded == 1,
             faults=Faults(per_tool={"refund": ToolFaults(0.5, {"timeout": 1.0})}), trials=80, seed=4,
             expect={"completion_rate": ">= 0.9"})

def test_refund(agent_chaos):
    agent_chaos.run(S)
'''


def _spans_by_trace(spans):
    traces = {}
    for s in spans:
        traces.setdefault(s.context.trace_id, []).append(s)
    return traces


def test_spans_follow_the_genai_conventions_and_match_the_traces():
    scenario = Scenario(name="http-refund", agent=careful_http_agent, llm=FakeLLM(policy, model="gpt-4o-mini"),
                        task="Refund order 42", world=Shop, tools=TOOLS, check=refund_done,
                        faults=Faults.profile("high"), trials=30, seed=12, early_stop=False)
    result = run_campaign(scenario)
    memory = InMemorySpanExporter()
    assert export([campaign_data(result, all_traces=True)], exporters=[memory]) == result.n
    spans = memory.get_finished_spans()
    traces = _spans_by_trace(spans)
    assert len(traces) == result.n  # a trace per trial
    by_index = {}
    for trace_spans in traces.values():
        (root,) = [s for s in trace_spans if s.parent is None]
        assert root.name == "invoke_agent http-refund" and root.attributes["gen_ai.operation.name"] == "invoke_agent"
        by_index[root.attributes["agentops.trial.index"]] = (root, trace_spans)
    for record in result.records:
        root, trace_spans = by_index[record.index]
        assert root.attributes["agentops.outcome"] == record.outcome
        assert root.attributes["gen_ai.usage.input_tokens"] == record.input_tokens
        chats = [s for s in trace_spans if s.attributes.get("gen_ai.operation.name") == "chat"]
        tools = [s for s in trace_spans if s.attributes.get("gen_ai.operation.name") == "execute_tool"]
        model_events = [e for e in record.trace if e.kind == "model_call"]
        tool_events = [e for e in record.trace if e.kind == "tool_call"]
        assert len(chats) == len(model_events) and len(tools) == len(tool_events)
        for span, event in zip(chats, model_events, strict=True):
            assert span.name == "chat gpt-4o-mini" and span.kind.name == "CLIENT"
            assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
            assert span.attributes["gen_ai.usage.input_tokens"] == event.input_tokens
            assert span.attributes["gen_ai.usage.output_tokens"] == event.output_tokens
            assert span.attributes.get("error.type") == (None if event.outcome == "ok" else event.outcome)
            assert span.attributes.get("agentops.fault.kind") == event.data.get("fault")
        for span, event in zip(tools, tool_events, strict=True):
            assert span.name == f"execute_tool {event.name}" and span.attributes["gen_ai.tool.name"] == event.name
            assert span.attributes.get("error.type") == (None if event.outcome == "ok" else event.outcome)
            assert json.loads(span.attributes["gen_ai.tool.call.arguments"]) == dict(event.data["arguments"])
        faults = [e for e in root.events if e.name == "agentops.fault"]
        assert len(faults) == len(record.faults)
    assert any(s.attributes.get("error.type") for s in spans)  # the high profile failed some calls


def _read_otlp_json(text):
    """OTLP/JSON lines -> ExportTraceServiceRequests (hex ids back to protobuf JSON's base64)."""
    requests = []
    for line in text.splitlines():
        data = json.loads(line)
        for rs in data["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16  # hex, as OTLP/JSON says
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
        requests.append(ParseDict(data, ExportTraceServiceRequest()))
    return requests


def _spans(requests):
    return [s for r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_plugin_writes_an_otlp_json_file_and_sends_to_the_otlp_endpoint(pytester, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Collector.received = []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    pytester.makepyfile(test_refund=CONFTEST)
    try:
        result = pytester.runpytest("--agent-chaos", "--agent-chaos-otel=spans.jsonl", "--agent-chaos-report=r.json",
                                    "-p", "no:cacheprovider")
    finally:
        server.shutdown()
    result.assert_outcomes(passed=1)
    (campaign,) = json.loads((pytester.path / "r.json").read_text())["campaigns"]
    spans = _spans(_read_otlp_json((pytester.path / "spans.jsonl").read_text()))
    roots = [s for s in spans if not s.parent_span_id]
    assert len(roots) == campaign["trials"] and len({s.trace_id for s in spans}) == campaign["trials"]
    tools = [s for s in spans if s.name == "execute_tool refund"]
    timeouts = [s for s in tools if any(a.key == "error.type" and a.value.string_value == "timeout"
                                        for a in s.attributes)]
    assert len(timeouts) == sum(r["faults"].count("refund:timeout") for r in campaign["records"]) > 0
    assert {s.name for s in spans} == {"invoke_agent refund", "chat gpt-4o-mini", "execute_tool refund"}
    # the same spans reached the collector as OTLP/HTTP protobuf
    paths = {path for path, _ in _Collector.received}
    assert paths == {"/v1/traces"}
    sent = []
    for _, body in _Collector.received:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        sent.extend(_spans([request]))
    assert sorted(s.name for s in sent) == sorted(s.name for s in spans)


class _Refusing(_Collector):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(400)
        self.end_headers()


def test_an_otlp_endpoint_that_does_not_take_the_spans_is_said_not_silent(pytester, monkeypatch):
    """An outside review: a wrong endpoint (an unparsable URL, a collector answering 400) lost every span without
    a word, exit 0: the SDK says why only in its log, which pytest's logging swallows at the session's end."""
    server = HTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pytester.makepyfile(test_refund=CONFTEST)
    try:
        for endpoint, said in ((f"http://127.0.0.1:{server.server_port}", "*400*"),
                               ("not a url", "*Host 'not a url' contains invalid character*")):
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            result = pytester.runpytest("--agent-chaos", "-p", "no:cacheprovider")
            result.assert_outcomes(passed=1)
            result.stdout.fnmatch_lines([
                "agentops: the OTLP endpoint (OTEL_EXPORTER_OTLP_*) did not take the trials' spans: " + said])
    finally:
        server.shutdown()


def test_the_json_report_is_the_same_with_an_otlp_export_and_past_the_budget_a_span_says_its_trace_was_not_kept(
        pytester, monkeypatch):
    """A review: the export asks for every trace (``keep_traces=None``), and exempting that from the campaign's
    trace budget made the JSON report differ with the export on (failing trials past the budget with and without
    their traces). The budget holds either way; a trial past it is a root span marked
    ``agentops.trace_kept = false`` (its replay command makes the trace again)."""
    import pytest_agentops.engine.trial as trial

    monkeypatch.setattr(trial, "CAMPAIGN_TRACE_EVENTS", 30)  # (the runs are in this process: put back after it)
    pytester.makepyfile(test_refund=CONFTEST)
    plain = pytester.runpytest("--agent-chaos", "--agent-chaos-report=plain.json", "-p", "no:cacheprovider")
    exported = pytester.runpytest("--agent-chaos", "--agent-chaos-otel=spans.jsonl",
                                  "--agent-chaos-report=exported.json", "-p", "no:cacheprovider")
    plain.assert_outcomes(passed=1)
    exported.assert_outcomes(passed=1)
    reports = [json.loads((pytester.path / name).read_text()) for name in ("plain.json", "exported.json")]
    for report in reports:
        report.pop("generated_at", None)
        report.pop("session", None)
    assert reports[0] == reports[1]
    (campaign,) = reports[0]["campaigns"]
    cut = {r["index"] for r in campaign["records"] if r.get("trace_kept") is False}
    assert cut
    spans = _spans(_read_otlp_json((pytester.path / "spans.jsonl").read_text()))
    marked = {int(next(a.value.int_value for a in s.attributes if a.key == "agentops.trial.index")) for s in spans
              if any(a.key == "agentops.trace_kept" and not a.value.bool_value for a in s.attributes)}
    assert marked and marked <= {r["index"] for r in campaign["records"]} and len(marked) >= len(cut)


def test_junit_xml_carries_per_campaign_properties(pytester):
    pytester.makepyfile(test_refund=CONFTEST)
    pytester.runpytest("--agent-chaos", "--junitxml=junit.xml", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    props = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert props["agentops:refund:campaign"].startswith("failed campaign trials=")
    assert "seed=4" in props["agentops:refund:campaign"]
    assert props["agentops:refund:completion_rate"].startswith("fail estimate=")
    assert props["agentops:refund:completion_rate:threshold"].startswith(">= 0.9 (")
    replays = [v for k, v in props.items() if k.startswith("agentops:refund:replay:trial-")]
    assert replays and all("--agent-chaos-replay=refund/trial-" in v and "--agent-chaos-seed=4" in v
                           for v in replays)


def test_gate_markdown_appends_to_the_github_step_summary(tmp_path, monkeypatch):
    from pytest_agentops.gate import main
    from pytest_agentops.report.json_report import write_report

    @tool
    def noop(world) -> str:
        """Do nothing."""
        return "ok"

    s = Scenario(name="noop", agent=lambda task, env: env.tools["noop"](), task="t", world=dict, tools=[noop],
                 faults=Faults(per_tool={"noop": ToolFaults(0.0)}), trials=30, seed=1,
                 expect={"completion_rate": ">= 0.5"})
    write_report(tmp_path / "r.json", [run_campaign(s)])
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main([str(tmp_path / "r.json"), "--markdown"]) == 0
    text = summary.read_text()
    assert text.startswith("# earlier step\n## Agent reliability gate: PASS")
    assert main([str(tmp_path / "r.json"), "--markdown", str(tmp_path / "gate.md")]) == 0
    assert (tmp_path / "gate.md").read_text().startswith("## Agent reliability gate: PASS")
    assert summary.read_text().count("## Agent reliability gate") == 2
    assert main([str(tmp_path / "r.json")]) == 0  # without --markdown: the summary is left alone
    assert summary.read_text().count("## Agent reliability gate") == 2
