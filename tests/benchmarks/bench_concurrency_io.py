"""1,000 async trials with 50 ms of real I/O each: concurrency 100 against the ideal, and against concurrency 1.

Each trial's agent calls an async tool that opens a TCP connection to a loopback server and waits for its
answer, which the server sends after a real 50 ms. The server runs in a child process started here (so
its work is not charged to the harness), listens on 127.0.0.1 only, and is bounded: it serves a fixed
number of connections and exits after a fixed time at the latest (and is terminated when the benchmark
ends).

- concurrency 100: 1,000 trials x 50 ms / 100 = 0.5 s ideal; printed as wall / ideal (goal <= 1.2), beside
  a plain asyncio client sending the same requests without the harness (what the machine allows right now);
- concurrency 1: about 50 s for 1,000 trials; printed as its wall over the concurrency-100 wall.
  ``--quick`` runs 100 trials at concurrency 1 and scales the time per trial to 1,000.

Usage: ``python tests/benchmarks/bench_concurrency_io.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time

from pytest_agentops import Faults, Scenario, run_campaign, tool

IO_DELAY_S = 0.05
HOST = "127.0.0.1"


# --- the loopback server (child process) ---------------------------------------------------------------------


async def _serve(max_connections: int, max_seconds: float) -> None:
    served = 0
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        served += 1
        if served >= max_connections:
            done.set()
        try:
            request = await reader.readline()
            await asyncio.sleep(IO_DELAY_S)  # real time: this is an ordinary event loop
            writer.write(b"ok " + request)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), max_seconds)
        await asyncio.sleep(IO_DELAY_S * 2)  # let the last answers go out


def start_server(max_connections: int, max_seconds: float) -> tuple[subprocess.Popen[str], int]:
    """Start the loopback server in a child process; returns it and its port."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(max_connections), str(max_seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the loopback server did not start (got {line!r})")
    return proc, int(line)


# --- the agent --------------------------------------------------------------------------------------------------

PORT = 0  # set once the server runs


class Desk:
    """The world: answers received."""

    def __init__(self) -> None:
        self.answers: list[str] = []


@tool
async def ask_backend(world: Desk, question: str) -> str:
    """Ask the backend service (a real TCP round trip of about 50 ms)."""
    reader, writer = await asyncio.open_connection(HOST, PORT)
    try:
        writer.write(question.encode() + b"\n")
        await writer.drain()
        answer = (await reader.readline()).decode().strip()
    finally:
        writer.close()
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
    if result.outcome_counts != {"completed": trials}:
        raise RuntimeError(f"not every trial completed: {result.outcome_counts}")
    return wall


async def _bare_clients(trials: int, concurrency: int) -> None:
    """The same requests from a plain asyncio client, no harness: what this machine allows right now."""
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            reader, writer = await asyncio.open_connection(HOST, PORT)
            writer.write(b"status?\n")
            await writer.drain()
            await reader.readline()
            writer.close()

    await asyncio.gather(*(one() for _ in range(trials)))


def bare(trials: int, concurrency: int) -> float:
    start = time.perf_counter()
    asyncio.run(_bare_clients(trials, concurrency))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 trials at concurrency 1 instead of 1,000")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args(argv)
    n, conc = args.trials, args.concurrency
    n1 = min(n, 100) if args.quick else n
    warmup = 50
    proc, PORT = start_server(max_connections=3 * n + n1 + warmup, max_seconds=20 + n1 * IO_DELAY_S * 3)
    try:
        campaign(warmup, min(conc, warmup))
        reference = bare(n, conc)
        wall = campaign(n, conc)
        ideal = n * IO_DELAY_S / conc
        wall1 = campaign(n1, 1) * n / n1
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"real I/O: {n} async trials x {IO_DELAY_S * 1000:.0f} ms at concurrency {conc}: {wall:.3f} s against "
          f"the ideal {ideal:.3f} s = {wall / ideal:.2f}x (goal <= 1.2); a plain asyncio client without the "
          f"harness: {reference:.3f} s = {reference / ideal:.2f}x")
    scaled = f" (measured on {n1} trials, scaled)" if n1 != n else ""
    print(f"real I/O: the same at concurrency 1: {wall1:.1f} s{scaled} = {wall1 / wall:.0f}x the concurrency-{conc} "
          "wall time")
    return 0 if wall / ideal <= 1.2 else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        asyncio.run(_serve(int(sys.argv[2]), float(sys.argv[3])))
    else:
        raise SystemExit(main())
