"""The live-model tests' upstream: a child process serving a known policy on loopback (``upstream_server.py``),
the recognizable key it expects, and the policy the client agents of ``client_agents.py`` follow."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_agentops.llm import call, call_tools_then_answer, rule

HERE = Path(__file__).resolve().parent
#: The environment variable the live boundary reads the key from (a test sets it).
KEY_ENV = "AGENTOPS_TEST_UPSTREAM_KEY"
#: A recognizable key: no artifact of a campaign may ever contain it.
SECRET = "sk-live-DO-NOT-LEAK-7f3a9c2e51b84d06"


@contextlib.contextmanager
def live_key() -> Iterator[None]:
    """``KEY_ENV`` set to ``SECRET`` for the block, as it was after it (module-scoped fixtures cannot use
    ``monkeypatch``)."""
    old = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = SECRET
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = old


#: What the client agents' tasks need (the same as client_agents.POLICY), importable without any SDK.
REFUND_POLICY = call_tools_then_answer(call("lookup_order", order_id=42), call("refund_order", order_id=42),
                                       answer="Refunded order 42.")


class UpstreamServer:
    """``upstream_server.py`` as a child process on loopback; ``stop()`` shuts it down for good."""

    def __init__(self, policy: str = "live_support:REFUND_POLICY", *, leak: bool = False, throttle: int = 0,
                 delay: float = 0.0, key: str = SECRET):
        env = {**os.environ, KEY_ENV: key,
               "PYTHONPATH": os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
        command = [sys.executable, str(HERE / "upstream_server.py"), "--policy", policy, "--key", KEY_ENV,
                   *(["--leak"] if leak else []), *(["--throttle", str(throttle)] if throttle else []),
                   *(["--delay", str(delay)] if delay else [])]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the upstream server did not start: {line!r}")
        self.port = int(line.split()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _call(self, method: str, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def stats(self) -> dict[str, int]:
        """The server's own counts: requests served, tokens reported, requests refused (a wrong key)."""
        return self._call("GET", "/stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._call("POST", "/reset")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _pin_of(request: Any) -> dict[str, int]:
    """The PIN a ``get_pin`` result gave, as a number (what a model passes on to ``unlock``)."""
    return {"pin": next((int(text) for name, text in request.tool_results() if name == "get_pin"), 0)}


#: A model that reads a secret PIN from a tool's result and passes it on, as a number, to another tool.
PIN_POLICY = call_tools_then_answer("get_pin", ("unlock", _pin_of), answer="unlocked")


@rule
def ECHO_POLICY(request: Any) -> str:
    """A model that repeats the task back (a secret in it comes back in the answer: streamed, split in deltas)."""
    return f"You said: {request.task}"
