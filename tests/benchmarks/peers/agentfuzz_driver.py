"""The shared workload (``peer_workload.py``) run by agentfuzz: ``Harness`` over its ``CallableAdapter``, a
``NetworkPartition`` fault at 10% (raises ``ConnectionError`` from the tool call). Run in agentfuzz's venv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentfuzz import Harness
from agentfuzz.adapters.callable import CallableAdapter
from agentfuzz.faults import NetworkPartition
from peer_workload import RATE, TOOL_NAMES, World, report, runs_from_argv, script, timed, tools_over


def main() -> None:
    runs = runs_from_argv()
    world = World()  # agentfuzz has no per-run world: the tools close over one
    tools = tools_over(lambda: world)

    def agent(state):
        call_tool = state["call_tool"]
        return {**state, "answer": script(lambda name, x: call_tool(name, x=x))}

    def campaign(n):
        harness = Harness(CallableAdapter(tools).wrap(agent), scenarios=[{"prompt": "run the tools"}], seed=1,
                          success=lambda state: state.get("answer") == len(TOOL_NAMES))
        harness.add(NetworkPartition(rate=RATE))
        return harness.run(iterations=n)

    campaign(200)  # warm-up
    seconds, result = timed(lambda: campaign(runs))
    faults = sum(1 for it in result.iterations for ev in it.events if ev.get("type") == "fault_blocked")
    report("agentfuzz", runs, seconds, sum(it.passed for it in result.iterations), faults)


if __name__ == "__main__":
    main()
