"""Async trials each awaiting 50 ms of real I/O: the harness against a plain asyncio client, in the same run.

Each trial's agent calls an async tool that sends one line over TCP to a loopback backend and waits for
the answer, which the backend sends 50 ms (real time) after the request arrived. Connections are kept
alive and reused, one pool per event loop, as an HTTP client's connection pool does; the first trials of
a run open them. The backend runs in a child process started here (so its work is not charged to the
client), listens on 127.0.0.1 only, answers at the due time to the tenth of a millisecond (it polls for
the last millisecond instead of trusting a millisecond-rounded wait), and exits after a fixed time at
the latest (and is terminated when the benchmark ends).

The plain client is the lean baseline: ``concurrency`` coroutines on one ``asyncio.run`` loop, each making
the next call as soon as its last one answered, through the same ``call_backend`` (so the same pooled
connections), with no harness. Each case runs harness and plain client in alternation (the order reversed every
other repeat: ``alternation``); the figure is the median of the per-repeat ratios harness wall / plain wall
(issue 15's goals):

- concurrency 100, 1,000 trials (ideal 0.5 s): median of 6 repeats, goal <= 1.03;
- concurrency 1,000, 10,000 trials (ideal 0.5 s: the harness must stay I/O-bound): median of 4, goal <= 1.3;
- the async path's own cost, no I/O: per trial, an async agent awaiting 5 async tools against the same
  agent written sync with sync tools, one trial at a time: process CPU async / sync (median of 6, goal
  <= 1.0; CPU, since wall time on a shared 2-core machine swings 2x between neighbouring runs), wall beside;
- concurrency 1, for scale: its wall over the concurrency-100 wall (reported).

``--quick`` keeps the two I/O cases as they are (they take seconds) and scales the concurrency-1 run to
40 trials and the no-I/O one to 2,000 trials (5,000 without it). Exits 0 only when every goal holds.

Usage: ``python tests/benchmarks/bench_concurrency_io.py [--quick] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import selectors
import socket
import statistics
import subprocess
import sys
import time

from alternation import alternate

from pytest_agentops import Faults, Scenario, run_campaign, tool

IO_DELAY_S = 0.05
HOST = "127.0.0.1"


# --- the loopback backend (child process) ------------------------------------------------------------------


def serve(max_seconds: float) -> None:
    """Answer each line ``q`` with ``ok q`` exactly ``IO_DELAY_S`` after it arrived, on kept-alive connections."""
    listener = socket.create_server((HOST, 0), backlog=1024)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    buffers: dict[socket.socket, bytes] = {}
    due: list[tuple[float, int, socket.socket, bytes]] = []  # (answer time, order, connection, answer)
    order = 0
    print(listener.getsockname()[1], flush=True)
    end = time.monotonic() + max_seconds
    while (now := time.monotonic()) < end:
        wait = end - now if not due else max(0.0, due[0][0] - now)
        # epoll rounds its timeout up to whole milliseconds: wait a millisecond less, then poll
        for key, _ in selector.select(wait - 0.001 if wait > 0.002 else 0):
            sock = key.fileobj
            if sock is listener:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    selector.register(conn, selectors.EVENT_READ)
                    buffers[conn] = b""
                continue
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                buffers.pop(sock, None)
                sock.close()
                continue
            arrived = time.monotonic()
            lines = (buffers[sock] + data).split(b"\n")
            buffers[sock] = lines.pop()
            for line in lines:
                order += 1
                heapq.heappush(due, (arrived + IO_DELAY_S, order, sock, b"ok " + line + b"\n"))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, sock, answer = heapq.heappop(due)
            if sock in buffers:
                with contextlib.suppress(OSError):  # the client went away
                    sock.sendall(answer)


def start_backend(max_seconds: float) -> tuple[subprocess.Popen[str], int]:
    """Start the backend in a child process; returns it and its port."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(max_seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the loopback backend did not start (got {line!r})")
    return proc, int(line)


# --- the client: one pool of kept-alive connections per event loop ----------------------------------------

PORT = 0  # set once the backend runs
_pools: dict[asyncio.AbstractEventLoop, list[socket.socket]] = {}


async def call_backend(question: str) -> str:
    """One request/answer round trip to the backend (about 50 ms), on a pooled connection."""
    loop = asyncio.get_running_loop()
    pool = _pools.setdefault(loop, [])
    if pool:
        sock = pool.pop()
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, (HOST, PORT))
    await loop.sock_sendall(sock, question.encode() + b"\n")
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            sock.close()
            raise ConnectionError("the backend closed the connection")
        answer += chunk
    pool.append(sock)
    return answer.decode().strip()


def close_pools() -> None:
    """Close the connections of finished runs (their loops are gone)."""
    for pool in _pools.values():
        for sock in pool:
            sock.close()
    _pools.clear()


# --- the agent --------------------------------------------------------------------------------------------


class Desk:
    """The world: answers received."""

    def __init__(self) -> None:
        self.answers: list[str] = []


@tool
async def ask_backend(world: Desk, question: str) -> str:
    """Ask the backend service (a real TCP round trip of about 50 ms)."""
    answer = await call_backend(question)
    world.answers.append(answer)
    return answer


async def io_agent(task: str, env) -> str:
    env.record_usage(input_tokens=120, output_tokens=12, model="gpt-4o-mini")
    return await env.tools["ask_backend"](task)


def campaign(trials: int, concurrency: int) -> float:
    """Wall seconds of one campaign (``run_campaign``: the trials and the result); every trial must complete."""
    scenario = Scenario(name=f"io-c{concurrency}", agent=io_agent, task="status?", world=Desk, tools=[ask_backend],
                        check=lambda world, out: out == "ok status?", faults=Faults.none(), trials=trials,
                        seed=1, concurrency=concurrency, early_stop=False, timeout_s=30)
    start = time.perf_counter()
    result = run_campaign(scenario)
    wall = time.perf_counter() - start
    close_pools()
    if result.outcome_counts != {"completed": trials}:
        raise RuntimeError(f"not every trial completed: {result.outcome_counts}")
    return wall


async def _plain_clients(trials: int, concurrency: int) -> None:
    """The same calls from a plain asyncio client: ``concurrency`` coroutines, each making the next call as
    soon as its last one answered (no task nor semaphore per call: the leanest way to keep that many busy)."""
    left = iter(range(trials))

    async def worker() -> None:
        for _ in left:
            answer = await call_backend("status?")
            if answer != "ok status?":
                raise RuntimeError(f"unexpected answer {answer!r}")

    await asyncio.gather(*(worker() for _ in range(min(concurrency, trials))))


def plain(trials: int, concurrency: int) -> float:
    start = time.perf_counter()
    asyncio.run(_plain_clients(trials, concurrency))
    wall = time.perf_counter() - start
    close_pools()
    return wall


def versus_plain(trials: int, concurrency: int, repeat: int) -> tuple[float, list[float], float, float]:
    """(median of harness/plain ratios, the ratios, median harness wall, median plain wall), in alternation."""
    walls, plains = [], []
    for arm in alternate(repeat, ("plain", "harness")):  # (the order reversed every other round)
        if arm == "plain":
            plains.append(plain(trials, concurrency))
        else:
            walls.append(campaign(trials, concurrency))
    ratios = [w / p for w, p in zip(walls, plains, strict=True)]
    return statistics.median(ratios), ratios, statistics.median(walls), statistics.median(plains)


# --- the async path without I/O, against the same agent written sync ---------------------------------------


@tool
async def async_step(world: Desk, x: int = 0) -> int:
    """An instant async tool."""
    return x + 1


@tool
def sync_step(world: Desk, x: int = 0) -> int:
    """The same tool, sync."""
    return x + 1


async def async_agent(task: str, env) -> str:
    for i in range(5):
        await env.tools["async_step"](i)
    return "done"


def sync_agent(task: str, env) -> str:
    for i in range(5):
        env.tools["sync_step"](i)
    return "done"


def no_io(kind: str, trials: int) -> tuple[float, float]:
    """Milliseconds per trial of a campaign of instant tools, one trial at a time: (wall, process CPU)."""
    is_async = kind == "async"
    scenario = Scenario(name=f"no-io-{kind}", agent=async_agent if is_async else sync_agent, task="go", world=Desk,
                        tools=[async_step if is_async else sync_step], check=lambda world, out: out == "done",
                        faults=Faults.none(), trials=trials, seed=1, concurrency=1, early_stop=False, timeout_s=30)
    start, cpu = time.perf_counter(), time.process_time()
    result = run_campaign(scenario)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if result.outcome_counts != {"completed": trials}:
        raise RuntimeError(f"not every trial completed: {result.outcome_counts}")
    return wall / trials * 1e3, cpu / trials * 1e3


def main(argv: list[str] | None = None) -> int:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter concurrency-1 and no-I/O runs")
    parser.add_argument("--repeat", type=int, default=6, help="repeats at concurrency 100 (median; default 6)")
    args = parser.parse_args(argv)
    n1 = 40 if args.quick else 1000
    proc, PORT = start_backend(max_seconds=120 + n1 * IO_DELAY_S * 3)
    try:
        campaign(50, 50)  # warm-up: imports, first-use caches
        plain(50, 50)
        r100, runs100, wall100, plain100 = versus_plain(1000, 100, args.repeat)
        r1000, runs1000, wall1000, plain1000 = versus_plain(10_000, 1000, max(4, args.repeat // 2 + 1))
        wall1 = campaign(n1, 1) * 1000 / n1
    finally:
        proc.terminate()
        proc.wait(10)
    n_no_io = 2000 if args.quick else 5000
    no_io("sync", 100), no_io("async", 100)  # warm-up
    sync_ms, async_ms = [], []
    for kind in alternate(6, ("sync", "async")):  # (the order reversed every other round)
        (sync_ms if kind == "sync" else async_ms).append(no_io(kind, n_no_io))
    r_no_io = statistics.median(a[0] / s[0] for a, s in zip(async_ms, sync_ms, strict=True))
    r_no_io_cpu = statistics.median(a[1] / s[1] for a, s in zip(async_ms, sync_ms, strict=True))

    def runs(ratios: list[float]) -> str:
        return ", ".join(f"{r:.2f}" for r in ratios)

    goals = {"c100": r100 <= 1.03, "c1000": r1000 <= 1.3, "no_io": r_no_io_cpu <= 1.0}

    def verdict(key: str) -> str:
        return "met" if goals[key] else "MISSED"

    print(f"real I/O, 1000 async trials x {IO_DELAY_S * 1000:.0f} ms at concurrency 100: harness / plain client "
          f"{r100:.3f} (median of {len(runs100)}: {runs(runs100)}; goal <= 1.03: {verdict('c100')}); harness "
          f"{wall100:.3f} s = {wall100 / 0.5:.2f}x the ideal 0.5 s, plain client {plain100:.3f} s = "
          f"{plain100 / 0.5:.2f}x")
    print(f"real I/O, 10000 async trials at concurrency 1000: harness / plain client {r1000:.2f} (median of "
          f"{len(runs1000)}: {runs(runs1000)}; goal <= 1.3: {verdict('c1000')}); harness {wall1000:.3f} s = "
          f"{wall1000 / 0.5:.2f}x the ideal 0.5 s, plain client {plain1000:.3f} s = {plain1000 / 0.5:.2f}x")
    print(f"async path without I/O, {n_no_io} trials of 5 instant tool calls, one at a time: process CPU async / "
          f"sync {r_no_io_cpu:.2f} per trial (median of 6: "
          f"{runs([a[1] / s[1] for a, s in zip(async_ms, sync_ms, strict=True)])}; goal <= 1.0: {verdict('no_io')});"
          f" async {statistics.median(a[1] for a in async_ms):.4f} ms, sync "
          f"{statistics.median(s[1] for s in sync_ms):.4f} ms CPU per trial; wall async / sync {r_no_io:.2f}")
    scaled = f" (measured on {n1} trials, scaled)" if n1 != 1000 else ""
    print(f"real I/O, the 1000 trials at concurrency 1: {wall1:.1f} s{scaled} = {wall1 / wall100:.0f}x the "
          "concurrency-100 wall time")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(float(sys.argv[2]))
    else:
        raise SystemExit(main())
