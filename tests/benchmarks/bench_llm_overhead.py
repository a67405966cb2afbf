"""The cost of the HTTP model fake: the careful reference agent with its model behind ``env.llm`` (httpx ->
respx interception -> the fake's policy, usage and trace) against the same agent calling the same demo
policy in-process (``DirectModel``), in one run.

Both campaigns run the same task, seed and trial count, with no faults (so both do exactly the same model
turns and tool calls; the tokens must agree too, since the fake and ``DirectModel`` use the same rule).
Printed: wall time per trial of each, and the overhead ratio HTTP / direct. Each campaign runs ``--repeat``
times; the best time counts (the least disturbed by the machine).

Usage: ``python tests/benchmarks/bench_llm_overhead.py [--trials 500] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import time

from alternation import alternate

from pytest_agentops import Faults, Scenario, run_campaign
from pytest_agentops.demo import TOOLS, Shop, careful_agent, careful_http_agent, policy, refund_done


def campaign(agent: object, *, trials: int, llm: object = None) -> tuple[float, int, int, int]:
    """(wall seconds, completed trials, total tokens, model calls) of one campaign."""
    scenario = Scenario(name="bench-llm", agent=agent, task="Refund order 42", world=Shop, tools=TOOLS,
                        check=refund_done, llm=llm, faults=Faults.none(), trials=trials, seed=1, early_stop=False)
    started = time.perf_counter()
    result = run_campaign(scenario)
    wall = time.perf_counter() - started
    # (counted by the trajectory layer: the trace of a passing trial past ``keep_traces`` is not kept)
    calls = sum(r.layers["trajectory"].model_steps for r in result.records)
    return wall, sum(r.outcome == "completed" for r in result.records), sum(r.tokens for r in result.records), calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    campaign(careful_http_agent, trials=5, llm=policy)  # warm up: imports, the shared httpx client
    campaign(careful_agent, trials=5)
    direct, http = [], []
    for arm in alternate(args.repeat, ("direct", "http")):  # (the order reversed every other round)
        if arm == "direct":
            direct.append(campaign(careful_agent, trials=args.trials))
        else:
            http.append(campaign(careful_http_agent, trials=args.trials, llm=policy))
    d, h = min(direct), min(http)
    assert d[1] == h[1] == args.trials, f"not every trial completed: direct {d[1]}, http {h[1]}"
    assert d[2] == h[2], f"the token rules disagree: direct {d[2]}, http {h[2]}"
    assert d[3] == h[3], f"the model turns disagree: direct {d[3]}, http {h[3]}"
    print(f"{args.trials} trials of the careful agent (refund order 42, no faults), best of {args.repeat}:")
    print(f"  direct policy calls: {d[0]:.3f} s  ({d[0] / args.trials * 1000:.2f} ms per trial)")
    print(f"  through the HTTP fake: {h[0]:.3f} s  ({h[0] / args.trials * 1000:.2f} ms per trial)")
    print(f"  tokens: {h[2]} in both ({h[2] // args.trials} per trial)")
    print(f"  overhead ratio (HTTP / direct): {h[0] / d[0]:.2f}x, "
          f"+{(h[0] - d[0]) / args.trials * 1000:.2f} ms per trial "
          f"(+{(h[0] - d[0]) / h[3] * 1000:.2f} ms per model call, {h[3] / args.trials:g} calls per trial)")


if __name__ == "__main__":
    main()
