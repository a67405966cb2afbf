"""Tokens spent after a crash: an agent that resumes from its checkpoint against one that starts over.

The same seeded crashes (``Faults(crash=1.0)``: every trial's agent dies once, after a tool call drawn
uniformly over the task's steps, after the tool's effect) hit two versions of one agent:

- resume: the agent as written: it checkpoints after each step and continues from the last checkpoint;
- restart: the same agent with its checkpoints wiped when it starts, i.e. a full restart from scratch.

Printed per workload: the mean ``tokens_after_crash`` of each and the ratio restart / resume (how many times
more a full restart costs; above 1 the resume saves). Workloads:

- ``pipeline-N``: N steps, one model call and one side-effecting tool call each; the prompt grows by one
  tool result per step, so late steps cost more than early ones (N = 3 and 10); the crash hits one of the
  N step calls uniformly;
- ``demo-refund``: the bundled careful agent on "Refund order 42": two tool calls (look up, refund). Its
  checkpoint is the whole conversation, and a resumed run re-sends it and looks the order up again before
  acting, so on so short a task resuming costs about as much as starting over.

Usage: ``python tests/benchmarks/bench_resume.py [--trials N]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from pytest_agentops import Faults, Scenario, run_campaign, tool

PROMPT, RESULT, REPLY = 1500, 350, 150  # tokens: system prompt + task, one tool result, one model reply


class Ledger:
    """The world: which steps' side effects happened (one entry per execution)."""

    def __init__(self) -> None:
        self.done: list[int] = []


@tool(side_effect=True)
def do_step(world: Ledger, step: int) -> dict:
    """Carry out step ``step`` (a side effect)."""
    world.done.append(step)
    return {"status": "done", "step": step}


@tool
def steps_done(world: Ledger) -> list:
    """The steps already carried out (the idempotency check)."""
    return sorted(set(world.done))


def pipeline_agent(n: int) -> Callable[[str, Any], Any]:
    """An agent for an N-step task: one model call and one tool call per step; checkpoints after each step.

    Every step's model call needs the results of the steps before it, so an agent without a checkpoint
    redoes them all; it never repeats a side effect, since it asks ``steps_done`` first.
    """

    def agent(task: str, env: Any) -> str:
        next_step = env.state.load("next_step")
        if next_step is None:
            next_step = 0
        else:  # resumed: one model call to read the checkpoint back in
            env.record_usage(input_tokens=PROMPT + RESULT * next_step, output_tokens=REPLY)
        done = set(env.tools["steps_done"]())  # what went through, also after the last checkpoint
        for step in range(next_step, n):
            env.record_usage(input_tokens=PROMPT + RESULT * step, output_tokens=REPLY)  # the context grows
            if step not in done:
                env.tools["do_step"](step)
            env.state.save("next_step", step + 1)
        return "done"

    return agent


def from_scratch(agent: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """The same agent, restarted from scratch: its checkpoints are wiped whenever it starts."""

    def restart(task: str, env: Any) -> Any:
        env.state.clear()
        return agent(task, env)

    return restart


def workloads(trials: int) -> dict[str, tuple[Callable[[Callable[..., Any]], Scenario], Callable[..., Any]]]:
    def pipeline(n: int) -> Callable[[Callable[..., Any]], Scenario]:
        def build(agent: Callable[..., Any]) -> Scenario:
            return Scenario(name=f"pipeline-{n}", agent=agent, task="run the pipeline", world=Ledger,
                            tools=[do_step, steps_done], check=lambda w, out: w.done == list(range(n)),
                            faults=Faults(crash=1.0, crash_steps=(2, n + 1)), trials=trials, seed=5, early_stop=False)
        return build

    def demo(agent: Callable[..., Any]) -> Scenario:
        from pytest_agentops.demo import TOOLS, Shop, refund_done

        return Scenario(name="demo-refund", agent=agent, task="Refund order 42", world=Shop, tools=TOOLS,
                        check=refund_done, faults=Faults(crash=1.0, crash_steps=(1, 2)), trials=trials, seed=5,
                        early_stop=False)

    from pytest_agentops.demo import careful_agent

    return {"pipeline-3": (pipeline(3), pipeline_agent(3)), "pipeline-10": (pipeline(10), pipeline_agent(10)),
            "demo-refund": (demo, careful_agent)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    args = parser.parse_args()
    print(f"{'workload':<12} {'resume':>8} {'restart':>8} {'restart/resume':>15}  (mean tokens after the crash, "
          f"{args.trials} crashed trials each)")
    for name, (build, agent) in workloads(args.trials).items():
        means = []
        for version in (agent, from_scratch(agent)):
            result = run_campaign(build(version))
            bad = {k: v for k, v in result.outcome_counts.items() if k != "completed"}
            if bad or result.metrics["duplicate_side_effects"].total:
                raise SystemExit(f"{name}: not every trial finished cleanly: {result.outcome_counts}")
            means.append(result.metrics["tokens_after_crash"].mean)
        print(f"{name:<12} {means[0]:>8.0f} {means[1]:>8.0f} {means[1] / means[0]:>14.2f}x")


if __name__ == "__main__":
    main()
