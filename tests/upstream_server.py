"""A real OpenAI- and Anthropic-compatible model server on loopback, run as a child process by the live-model
tests: ``python tests/upstream_server.py --policy MODULE:ATTR --key KEY_ENV [--leak] [--throttle N]``.

It answers ``POST /v1/chat/completions`` (JSON, or SSE with the usage chunk when asked for), ``POST
/v1/messages`` and ``POST /v1/responses`` (JSON or SSE) with a known policy (the fake model's policies, so
the answers are known), over HTTP/1.1 keep-alive; refuses a request whose key is not the one in the
environment variable named by ``--key`` (so a test proves the live boundary swapped the agent's fake key for
the real one); with ``--leak``, echoes the key it got in every JSON answer (a careless upstream); with
``--throttle N``, answers every N-th request 429 (retry after 5 ms); and counts what it served: ``GET
/stats`` gives its own request and token counts (tokens by the fake model's rule, which it also reports as
``usage``), ``POST /reset`` zeroes them. It prints ``PORT <n>`` once it listens. Stdlib HTTP only; the wire
formats are the package's (``llm.wire``).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import importlib
import json
import os
import sys
import threading
import time
from typing import Any

from pytest_agentops.errors import WireError
from pytest_agentops.llm import usage as usage_rule
from pytest_agentops.llm import wire
from pytest_agentops.llm.policy import ModelRequest, respond

CREATED = 1_767_225_600


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.refused = 0
        self.counter = 0
        self.throttled = 0
        self.in_flight = self.most_in_flight = 0  # answers being prepared now, and the most at once

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "refused": self.refused, "throttled": self.throttled, "most_in_flight": self.most_in_flight}


def make_handler(policy: Any, key: str, stats: Stats, leak: bool = False,
                 throttle: int = 0, delay: float = 0.0) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait for a delayed ACK

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/stats":
                with stats.lock:
                    self._send(200, json.dumps(stats.as_dict()).encode())
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path == "/reset":
                with stats.lock:
                    stats.reset()
                self._send(200, b"{}")
                return
            api = wire.api_of(self.path)
            if api is None:
                self._send(404, b'{"error": {"message": "not found"}}')
                return
            given = self.headers.get("x-api-key") or (self.headers.get("authorization") or "").removeprefix("Bearer ")
            if given != key:
                with stats.lock:
                    stats.refused += 1
                self._send(401, json.dumps(wire.error_body(api, 401, "invalid api key")).encode())
                return
            try:
                body = json.loads(raw)
                parsed = wire.parse(api, body)
            except (ValueError, WireError) as exc:
                self._send(400, json.dumps(wire.error_body(api, 400, str(exc))).encode())
                return
            n = hashlib.sha1(raw).hexdigest()[:12]  # ids from the request: the same request, the same answer
            if delay:  # a slow model: how many requests wait at once shows whether the callers send in parallel
                with stats.lock:
                    stats.in_flight += 1
                    stats.most_in_flight = max(stats.most_in_flight, stats.in_flight)
                time.sleep(delay)
                with stats.lock:
                    stats.in_flight -= 1
            with stats.lock:
                stats.counter += 1
                limited = throttle and stats.counter % throttle == 0
                stats.throttled += bool(limited)
            if limited:  # its own rate limit: wait 5 ms
                self.send_response(429)
                body = json.dumps(wire.error_body(api, 429, "rate limited")).encode()
                self.send_header("content-type", "application/json")
                self.send_header("retry-after-ms", "5")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            request = ModelRequest(messages=parsed.messages, tools=parsed.tools, model=parsed.model, api=api,
                                   stream=parsed.stream)
            reply = respond(policy, request)
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.tool_calls:
                message["tool_calls"] = [{"id": c.id or f"call_{n}_{i}", "type": "function",
                                          "function": {"name": c.name, "arguments": c.arguments_json}}
                                         for i, c in enumerate(reply.tool_calls)]
            usage = (usage_rule.input_tokens(parsed.messages, parsed.tools), usage_rule.output_tokens(message))
            with stats.lock:
                stats.requests += 1
                stats.input_tokens += usage[0]
                stats.output_tokens += usage[1]
            model, rid = parsed.model or "upstream-model", f"srv{n}"
            if parsed.stream:
                if api == "chat":
                    events = wire.chat_sse(message, rid=rid, model=model, created=CREATED, usage=usage,
                                           include_usage=parsed.include_usage)
                elif api == "messages":
                    events = wire.messages_sse(message, rid=rid, model=model, usage=usage)
                else:
                    events = wire.responses_sse(message, rid=rid, model=model, created=CREATED, usage=usage)
                self._send(200, b"".join(events), "text/event-stream")
                return
            if api == "chat":
                out = wire.chat_body(message, rid=rid, model=model, created=CREATED, usage=usage)
            elif api == "messages":
                out = wire.messages_body(message, rid=rid, model=model, usage=usage)
            else:
                out = wire.responses_body(message, rid=rid, model=model, created=CREATED, usage=usage)
            if leak:  # a careless upstream that echoes the caller's key
                out["system_fingerprint"] = f"fp for {given}"
            self._send(200, json.dumps(out).encode())

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", default="pytest_agentops.demo:policy")
    parser.add_argument("--key", required=True, help="the environment variable holding the expected key")
    parser.add_argument("--leak", action="store_true", help="echo the caller's key in every JSON answer")
    parser.add_argument("--throttle", type=int, default=0, help="answer every N-th request 429 (retry after 5 ms)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    args = parser.parse_args()
    module, _, attr = args.policy.partition(":")
    policy = importlib.import_module(module)
    for part in attr.split("."):
        policy = getattr(policy, part)
    stats = Stats()
    handler = make_handler(policy, os.environ[args.key], stats, args.leak, args.throttle, args.delay)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
