"""The shared workload (``peer_workload.py``) run by agent-chaos: one ``chaos_context`` per run with a
``ToolErrorChaos`` at 10%, every tool result passed through its injector (``next_tool_chaos``), as its
provider patches do for a model's tool results; an error result fails the call. No model provider is
patched (the workload has no model). Run in agent-chaos's venv (Python >= 3.12)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent_chaos import chaos_context
from agent_chaos.chaos.tool import ToolErrorChaos
from peer_workload import (
    RATE,
    TOOL_FUNCTIONS,
    TOOL_NAMES,
    Failed,
    World,
    report,
    runs_from_argv,
    script,
    timed,
)


def main() -> None:
    runs = runs_from_argv()
    tools = dict(zip(TOOL_NAMES, TOOL_FUNCTIONS, strict=True))

    def campaign(n):
        completed = faults = 0
        for _ in range(n):
            world = World()
            with chaos_context(name="workload", chaos=[ToolErrorChaos(probability=RATE)], providers=[]) as ctx:
                injector = ctx.injector

                def call(name, x, world=world, injector=injector):
                    nonlocal faults
                    result = tools[name](world, x)
                    chaos = injector.next_tool_chaos(name, str(result))
                    if chaos is not None and chaos[0].mutated is not None:
                        faults += 1
                        raise Failed(chaos[0].mutated)
                    return result

                completed += script(call) == len(TOOL_NAMES)
        return completed, faults

    campaign(200)  # warm-up
    seconds, (completed, faults) = timed(lambda: campaign(runs))
    report("agent-chaos", runs, seconds, completed, faults)


if __name__ == "__main__":
    main()
