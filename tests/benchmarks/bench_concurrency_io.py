"""1,000 async trials with 50 ms of real I/O each: concurrency 100 against the ideal, and against concurrency 1.

Each trial's agent calls an async tool that sends one line over TCP to a loopback backend and waits for
the answer, which the backend sends 50 ms (real time) after the request arrived. Connections are kept
alive and reused, one pool per event loop, as an HTTP client's connection pool does; the first trials of
a run open them. The backend runs in a child process started here (so its work is not charged to the
client), listens on 127.0.0.1 only, answers at the due time to the tenth of a millisecond (it polls for
the last millisecond instead of trusting a millisecond-rounded wait), and exits after a fixed time at
the latest (and is terminated when the benchmark ends).

- concurrency 100: 1,000 trials x 50 ms / 100 = 0.5 s ideal; printed as wall / ideal (goal <= 1.2), beside
  a plain asyncio client making the same calls through the same code without the harness (what this
  machine allows right now). Each is the median of ``--repeat`` runs (default 5), in alternation.
- concurrency 1: about 50 s for 1,000 trials; printed as its wall over the concurrency-100 wall.
  ``--quick`` runs 100 trials at concurrency 1 and scales the time per trial to 1,000.

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
    """Wall seconds of one campaign; every trial must complete."""
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


async def _bare_clients(trials: int, concurrency: int) -> None:
    """The same calls from a plain asyncio client, no harness: what this machine allows right now."""
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            answer = await call_backend("status?")
            if answer != "ok status?":
                raise RuntimeError(f"unexpected answer {answer!r}")

    await asyncio.gather(*(one() for _ in range(trials)))


def bare(trials: int, concurrency: int) -> float:
    start = time.perf_counter()
    asyncio.run(_bare_clients(trials, concurrency))
    wall = time.perf_counter() - start
    close_pools()
    return wall


def main(argv: list[str] | None = None) -> int:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 trials at concurrency 1 instead of 1,000")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each kind at concurrency 100 (median)")
    args = parser.parse_args(argv)
    n, conc = args.trials, args.concurrency
    n1 = min(n, 100) if args.quick else n
    proc, PORT = start_backend(max_seconds=60 + n1 * IO_DELAY_S * 3)
    try:
        campaign(min(n, 50), min(conc, 50))  # warm-up: imports, first-use caches
        bare(min(n, 50), min(conc, 50))
        walls, references = [], []
        for _ in range(args.repeat):
            references.append(bare(n, conc))
            walls.append(campaign(n, conc))
        wall, reference = statistics.median(walls), statistics.median(references)
        ideal = n * IO_DELAY_S / conc
        wall1 = campaign(n1, 1) * n / n1
    finally:
        proc.terminate()
        proc.wait(10)
    runs = ", ".join(f"{w / ideal:.2f}" for w in walls)
    print(f"real I/O: {n} async trials x {IO_DELAY_S * 1000:.0f} ms at concurrency {conc}: {wall:.3f} s against "
          f"the ideal {ideal:.3f} s = {wall / ideal:.2f}x (median of {args.repeat}: {runs}; goal <= 1.2); a plain "
          f"asyncio client making the same calls without the harness: {reference:.3f} s = {reference / ideal:.2f}x")
    scaled = f" (measured on {n1} trials, scaled)" if n1 != n else ""
    print(f"real I/O: the same at concurrency 1: {wall1:.1f} s{scaled} = {wall1 / wall:.0f}x the concurrency-{conc} "
          "wall time")
    return 0 if wall / ideal <= 1.2 else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(float(sys.argv[2]))
    else:
        raise SystemExit(main())
