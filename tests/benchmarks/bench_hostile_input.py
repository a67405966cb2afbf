"""What hostile input costs: each case runs in a fresh Python process, which reports its wall time for the
case and its peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the whole process, the
interpreter and the package's imports included; the ``baseline`` case is those imports alone).

Cases and goals:

- ``alias bomb``: "billion laughs" scenario files (aliases of aliases, 9, 10 and 12 levels of 9 copies: 563,
  ~610 and ~740 bytes) are refused: goal < 0.5 s and < 50 MB peak.
- ``deep nesting``: 20,000 nested ``[`` is refused (not a RecursionError).
- ``huge file``: a 50 MB file is refused after reading 1 MB.
- ``trials 10,000,000``: a campaign planning the most trials allowed, whose verdicts are decided at the
  first look (25 trials): goal < 100 MB peak, and about the peak of the same campaign planning 25 trials.
- ``trials 100,000,000``: refused at once (a ConfigError naming ``trials``); the scheduler alone, given
  100,000,000 planned trials past the cap, stops at 25 within the same memory: goal < 100 MB.
- ``concurrency 1,000``: 5,000 trials of a quick sync agent at the most concurrency allowed (1,000 worker
  threads at most), beside concurrency 8; concurrency 100,000 is refused.

Each child gets ``--timeout`` seconds and (except the concurrency cases) an address-space limit of
``--limit-mb``, so that running this against an older checkout (``--against DIR``) reports a child that
died of it rather than exhausting the machine.

Usage: ``python tests/benchmarks/bench_hostile_input.py [--quick] [--against DIR]``; exits 1 when a goal is
missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import json, resource, sys, time
def done(t0, **extra):
    print(json.dumps({"s": time.perf_counter() - t0,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}))
"""

LOAD = PRELUDE + """
from pytest_agentops.errors import ScenarioFileError
from pytest_agentops.scenario_file import load_scenario_text, read_scenario_file
text = open(sys.argv[1], encoding="utf-8").read() if sys.argv[1] != "-" else ""
t0 = time.perf_counter()
try:
    ACTION
    done(t0, outcome="accepted")
except ScenarioFileError as exc:
    done(t0, outcome="refused", message=str(exc)[:160])
"""

SCHEDULER = PRELUDE + """
from pytest_agentops import Faults, Scenario
from pytest_agentops.engine.scheduler import Runner
from pytest_agentops.settings.run import RunSettings

def agent(task, env):
    return "ok"

t0 = time.perf_counter()
scenario = Scenario(name="bench", agent=agent, faults=Faults.none(), expect={"completion_rate": ">= 0.5"})
settings = RunSettings(seed=3, trials=25, faults=Faults.none())
object.__setattr__(settings, "trials", 100_000_000)  # past the cap: the scheduler alone
records, stopped = Runner(scenario, settings).run()
done(t0, outcome=f"ran {len(records)} trials")
"""

LOAD_TEXT = LOAD.replace("ACTION", "load_scenario_text(text, sys.argv[1])")

CAMPAIGN = PRELUDE + """
from pytest_agentops import ConfigError, Faults, Scenario, run_campaign

class World:
    def __init__(self):
        self.done = False

def agent(task, env):
    env.world.done = True
    return "ok"

def check(world, output):
    return world.done

t0 = time.perf_counter()
try:
    scenario = Scenario(name="bench", agent=agent, world=World, check=check, faults=Faults.none(), seed=3,
                        trials=TRIALS, concurrency=CONCURRENCY, early_stop=EARLY_STOP,
                        expect={"completion_rate": ">= 0.5"})
    result = run_campaign(scenario)
    done(t0, outcome=f"ran {len(result.records)} trials", trials=len(result.records))
except ConfigError as exc:
    done(t0, outcome="refused", message=str(exc)[:160])
"""


def laughs(levels: int, copies: int = 9) -> str:
    lines = ["name: bomb", "agent: pytest_agentops.demo:careful_agent", "task:",
             f"  l0: &l0 [{', '.join(['lol'] * copies)}]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * copies)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def run(code: str, args: list[str], env: dict[str, str], timeout: float, limit_mb: int | None) -> dict:
    def limit() -> None:
        if limit_mb is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_mb * 2**20, limit_mb * 2**20))

    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                              timeout=timeout, preexec_fn=limit, cwd=tempfile.gettempdir())  # not ROOT: -c
        # puts the working directory first on sys.path, which would import this checkout over --against
    except subprocess.TimeoutExpired:
        return {"outcome": f"timeout after {timeout:g} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"outcome": f"died (exit {proc.returncode}: {tail[:120]})"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials in the concurrency case")
    parser.add_argument("--against", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    parser.add_argument("--limit-mb", type=int, default=4096, help="address-space limit per case (default 4096)")
    args = parser.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=str(args.against.resolve()))
    failures: list[str] = []
    rows: list[tuple[str, dict]] = []

    def case(name: str, code: str, *extra: str, goal_s: float | None = None, goal_mb: float | None = None,
             expect: str | None = None, limited: bool = True) -> dict:
        out = run(code, list(extra), env, args.timeout, args.limit_mb if limited else None)
        rows.append((name, out))
        s, mb = out.get("s"), out.get("rss_mb")
        shown = f"{s:8.3f} s {mb:7.1f} MB" if s is not None else " " * 19
        print(f"{name:<38} {shown}  {out['outcome']}", flush=True)
        if "message" in out:
            print(f"{'':<38}   {out['message']}", flush=True)
        slow = goal_s is not None and (s is None or s >= goal_s)
        if slow or (goal_mb is not None and (mb is None or mb >= goal_mb)):
            goals = [f"< {goal} {unit}" for goal, unit in ((goal_s, "s"), (goal_mb, "MB")) if goal is not None]
            failures.append(f"{name}: goal {' and '.join(goals)}")
        if expect is not None and not out["outcome"].startswith(expect):
            failures.append(f"{name}: expected {expect}, got {out['outcome']}")
        return out

    with tempfile.TemporaryDirectory() as tmp:
        def write(name: str, text: str | bytes) -> str:
            path = Path(tmp) / name
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
            return str(path)

        print(f"measuring {args.against}; each case in a fresh process (peak RSS includes the interpreter)")
        case("baseline (imports only)", LOAD.replace("ACTION", "pass"), "-")
        for levels in (9, 10, 12):
            text = laughs(levels)
            case(f"alias bomb, {len(text.encode())} bytes", LOAD_TEXT,
                 write(f"bomb{levels}.yaml", text), goal_s=0.5, goal_mb=50, expect="refused")
        deep = "name: deep\nagent: pytest_agentops.demo:careful_agent\ntask: " + "[" * 20_000 + "]" * 20_000 + "\n"
        case("20,000-deep nesting", LOAD_TEXT, write("deep.yaml", deep),
             goal_s=0.5, goal_mb=50, expect="refused")
        huge = write("huge.yaml", b"name: x\nagent: a:b\n# " + b"x" * 50_000_000 + b"\n")
        case("50 MB file", LOAD.replace("ACTION", f"read_scenario_file({huge!r})"), "-", goal_s=0.5, goal_mb=50,
             expect="refused")

        def campaign(trials: int, concurrency: int = 1, early_stop: bool = True) -> str:
            return (CAMPAIGN.replace("TRIALS", str(trials)).replace("CONCURRENCY", str(concurrency))
                    .replace("EARLY_STOP", str(early_stop)))

        # the judges decide these after a handful of trials (how many depends a little on the maximum)
        small = case("campaign, trials 25", campaign(25), expect="ran ")
        most = case("campaign, trials 10,000,000", campaign(10_000_000), goal_mb=100, expect="ran ")
        if "rss_mb" in small and "rss_mb" in most and most["rss_mb"] > small["rss_mb"] + 10:
            failures.append("trials 10,000,000: more than 10 MB above the same campaign planning 25 trials")
        if not most["outcome"].startswith("ran ") or int(most["outcome"].split()[1]) > 25:
            failures.append(f"trials 10,000,000: decided after more than 25 trials ({most['outcome']})")
        case("campaign, trials 100,000,000", campaign(100_000_000), goal_s=0.5, goal_mb=100, expect="refused")
        case("scheduler alone, 100,000,000 planned", SCHEDULER, goal_mb=100, expect="ran ")
        n = 1_000 if args.quick else 5_000
        # (no address-space limit here: 1,000 threads reserve 8 GB of stack address space, not memory)
        case(f"{n:,} trials, concurrency 8", campaign(n, 8, False), expect=f"ran {n}", limited=False)
        case(f"{n:,} trials, concurrency 1,000", campaign(n, 1_000, False), expect=f"ran {n}", limited=False)
        case(f"{n:,} trials, concurrency 100,000", campaign(n, 100_000, False), goal_s=0.5, expect="refused")

    if failures:
        print("MISSED: " + "; ".join(failures))
        return 1
    print("all goals met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
