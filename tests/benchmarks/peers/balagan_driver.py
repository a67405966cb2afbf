"""The shared workload (``peer_workload.py``) run by balagan-agent: a ``ToolProxy`` per tool with a
``ToolFailureInjector`` at 10% (exceptions only; the proxy's own retries off, so the agent retries as for
everyone). Proxies are made once, like a campaign's. Run in balagan-agent's venv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from balaganagent import ToolProxy
from balaganagent.injectors.tool_failure import FailureMode, ToolFailureConfig, ToolFailureInjector
from peer_workload import RATE, TOOL_NAMES, World, report, runs_from_argv, script, timed, tools_over


def main() -> None:
    runs = runs_from_argv()

    def campaign(n):
        current = {"world": World()}
        injector = ToolFailureInjector(ToolFailureConfig(probability=RATE, seed=1,
                                                         failure_modes=[FailureMode.EXCEPTION]))
        proxies = {}
        for name, fn in tools_over(lambda: current["world"]).items():
            proxy = ToolProxy(fn, name=name, max_retries=0, retry_delay_seconds=0.0)
            proxy.add_injector(injector)
            proxies[name] = proxy
        completed = 0
        for _ in range(n):
            current["world"] = World()
            completed += script(lambda name, x: proxies[name](x)) == len(TOOL_NAMES)
        return completed, injector._injection_count  # (no public count of injections)

    campaign(200)  # warm-up
    seconds, (completed, faults) = timed(lambda: campaign(runs))
    report("balagan-agent", runs, seconds, completed, faults)


if __name__ == "__main__":
    main()
