"""The live model boundary's cost, side by side in one run, against a real server on loopback (the child process
of ``tests/upstream_server.py`` serving a known policy):

1. **Per model call**: a client (the openai SDK, sync, one client, no retries; and a plain ``httpx.Client``)
   calling the server directly, and the same client calling it through the live boundary (``env.llm.base_url``
   inside a campaign trial: the request parsed, its fault drawn, its drift applied, the spend reserved,
   forwarded over the boundary's own connection, the usage read and metered, the reply passed on). Rounds
   alternate the two, the order reversed every other round (``alternation``: a drift within the run then falls on
   both alike); the figures are medians over rounds of each round's median per-call time, and the median of the
   rounds' differences (paired: the machine's load drifts between rounds, less within one). Goal: the
   boundary adds <= 1 ms per call. Through the boundary the client's own socket I/O is replaced by an
   in-process hand-off (respx) and the boundary forwards over its own kept-alive connection, so the difference
   can be negative; the boundary's own work per call (its handler's time minus the upstream exchange) is
   printed too.
2. **Per campaign**: the same agent (the demo's careful agent, its model over HTTP) against the scripted fake
   model serving the demo policy (``FakeLLM``), and replaying a cassette recorded once from the server serving
   the same policy (the server then shut down). Rounds alternate (the order reversed every other round);
   medians of wall and CPU time per campaign and the median of the rounds' replay/fake ratios. Goal: the replay
   is at least as fast as the fake.

Usage: ``python tests/benchmarks/bench_live.py [--calls 200] [--trials 200] [--rounds 8] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # live_support

import httpx
import openai
from alternation import alternate

from pytest_agentops import Faults, LiveLLM, Scenario, run_campaign
from pytest_agentops.demo import TOOLS, Shop, careful_http_agent, policy, refund_done
from pytest_agentops.llm import FakeLLM
from pytest_agentops.vtime import real  # read at call time: a name bound here is swept to a trial's virtual clock

from live_support import KEY_ENV, SECRET, UpstreamServer

MESSAGES = [{"role": "system", "content": "You refund orders."}, {"role": "user", "content": "Refund order 42"}]
SCHEMAS = [{"type": "function", "function": {"name": n, "description": f"{n} tool", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}
    for n in ("lookup_order", "refund_order")]
BODY = {"model": "gpt-4o-mini", "messages": MESSAGES, "tools": SCHEMAS}
OWN: list[float] = []  # the boundary's own seconds per call: its handler's time minus the upstream exchange


def sdk_call(client: Any) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=SCHEMAS)


def httpx_call(client: Any) -> None:
    client.post("/chat/completions", json=BODY).raise_for_status()


def make_client(kind: str, base_url: str, key: str) -> Any:
    if kind == "openai":
        return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    return httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {key}"})


def timed_calls(kind: str, client: Any, calls: int) -> list[float]:
    call = sdk_call if kind == "openai" else httpx_call
    out = []
    for _ in range(calls):
        started = real.real_perf_counter()
        call(client)
        out.append(real.real_perf_counter() - started)
    return out


def direct(kind: str, calls: int, client: Any) -> float:
    return statistics.median(timed_calls(kind, client, calls))


def measure_own_work() -> None:
    """Time the live boundary's handler and the upstream exchange inside it (for the ``OWN`` figure)."""
    from pytest_agentops.llm.live import LiveModel
    from pytest_agentops.llm.upstream import HttpUpstream

    handle, send = LiveModel.handle, HttpUpstream.send
    inside: list[float] = []

    def timed_send(self: Any, out: Any) -> Any:
        started = real.real_perf_counter()
        try:
            return send(self, out)
        finally:
            inside.append(real.real_perf_counter() - started)

    def timed_handle(self: Any, request: Any, core: Any) -> Any:
        started = real.real_perf_counter()
        try:
            return handle(self, request, core)
        finally:
            OWN.append(real.real_perf_counter() - started - (inside.pop() if inside else 0.0))

    HttpUpstream.send = timed_send  # type: ignore[method-assign]
    LiveModel.handle = timed_handle  # type: ignore[method-assign]


def through_boundary(kind: str, server: UpstreamServer, calls: int) -> float:
    seen: list[list[float]] = []

    def agent(task: str, env: Any) -> str:
        seen.append(timed_calls(kind, make_client(kind, env.llm.base_url, env.llm.api_key), calls))
        return "done"

    live = LiveLLM(base_url=server.base_url, key_env=KEY_ENV, model="gpt-4o-mini")
    result = run_campaign(Scenario(name=f"overhead-{kind}", agent=agent, task="t", live=live, faults=Faults(),
                                   trials=1, seed=1))
    assert result.records[0].outcome == "completed", result.records[0].reason
    return statistics.median(seen[0])


def campaign_seconds(scenario: Scenario, **kwargs: Any) -> tuple[float, float]:
    """Wall and CPU seconds of one campaign (CPU: the process, all threads)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = run_campaign(scenario, **kwargs)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.outcome_counts == {"completed": scenario.trials}, result.outcome_counts
    return took, cpu


def per_call(server: UpstreamServer, calls: int, rounds: int) -> float:
    """Print the per-call figures of both clients; returns the larger added time (ms)."""
    measure_own_work()
    worst = -1e9
    for kind in ("openai", "httpx"):
        client = make_client(kind, server.base_url, SECRET)
        direct(kind, 20, client)  # warm up: imports, connections
        through_boundary(kind, server, 20)
        OWN.clear()
        plain, bounded = [], []
        for arm in alternate(rounds, ("direct", "boundary")):  # (the order reversed every other round)
            if arm == "direct":
                plain.append(direct(kind, calls, client))
            else:
                bounded.append(through_boundary(kind, server, calls))
        a, b = statistics.median(plain), statistics.median(bounded)
        added_ms = statistics.median(y - x for x, y in zip(plain, bounded, strict=True)) * 1000
        worst = max(worst, added_ms)
        own = statistics.median(OWN) * 1000
        print(f"per model call, {kind} client ({calls} calls x {rounds} rounds, medians): direct {a * 1000:.3f} "
              f"ms, through the live boundary {b * 1000:.3f} ms: {added_ms:+.3f} ms per call (median of the rounds' "
              f"differences; goal <= +1 ms); the boundary's own work {own:.3f} ms per call")
    return worst


def per_campaign(trials: int, rounds: int) -> float:
    """Print the campaign figures; returns the median replay/fake ratio of wall time."""
    server = UpstreamServer("pytest_agentops.demo:policy")
    try:
        common: dict[str, Any] = dict(name="bench-refund", agent=careful_http_agent, task="Refund order 42",
                                      world=Shop, tools=TOOLS, check=refund_done, faults=Faults(), trials=trials,
                                      seed=5, early_stop=False)
        fake = Scenario(llm=FakeLLM(policy, model="gpt-4o-mini"), **common)
        live = Scenario(live=LiveLLM(base_url=server.base_url, key_env=KEY_ENV, model="gpt-4o-mini"), **common)
        with tempfile.TemporaryDirectory() as cassettes:
            campaign_seconds(live, record=cassettes)
            server.stop()
            campaign_seconds(fake)  # warm up
            campaign_seconds(live, cassette=cassettes)
            fakes, replays = [], []
            for arm in alternate(rounds, ("fake", "replay")):  # (the order reversed every other round)
                if arm == "fake":
                    fakes.append(campaign_seconds(fake))
                else:
                    replays.append(campaign_seconds(live, cassette=cassettes))
    finally:
        server.stop()
    f, r = statistics.median(w for w, _ in fakes), statistics.median(w for w, _ in replays)
    cpu_f, cpu_r = statistics.median(c for _, c in fakes), statistics.median(c for _, c in replays)
    ratio = statistics.median(b[0] / a[0] for a, b in zip(fakes, replays, strict=True))
    print(f"per campaign ({trials} trials x {rounds} rounds, medians): FakeLLM {f * 1000:.1f} ms wall "
          f"({cpu_f * 1000:.1f} ms CPU), cassette replay {r * 1000:.1f} ms wall ({cpu_r * 1000:.1f} ms CPU): "
          f"replay/fake {ratio:.2f} (median of the rounds' ratios; goal <= 1.00)")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="50 calls, 100 trials, 6 rounds")
    args = parser.parse_args()
    calls, trials, rounds = (50, 100, 6) if args.quick else (args.calls, args.trials, args.rounds)
    os.environ[KEY_ENV] = SECRET
    server = UpstreamServer()
    try:
        worst = per_call(server, calls, rounds)
    finally:
        server.stop()
    ratio = per_campaign(trials, rounds)
    return 0 if worst <= 1.0 and ratio <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
