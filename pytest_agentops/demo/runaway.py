"""A runaway agent for the budget layer: with a known probability it never stops searching.

A healthy trial makes four model calls (three searches, then it submits); a stuck trial keeps searching
forever, and every tool result lands in its context, so each model call costs more than the last. Only
the budget's circuit breaker ends it: the trial stops cleanly with outcome ``budget_exceeded`` instead of
hanging until the wall-clock timeout. The true runaway probability is ``p``, so a campaign's
``budget_exceeded_rate`` has a known answer (scenarios/budget_runaway.yaml uses ``agent`` = p of 2%).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..scenario import Scenario
from ..settings.layers import Budget
from ..settings.tools import tool

#: Tokens of the first model call (system prompt + task), of each tool result added to the context,
#: and of each model reply. A healthy trial spends 4 * 340 + 6 * 250 = 2,860 tokens; a stuck one passes
#: 20,000 tokens at its 12th model call.
PROMPT_TOKENS, RESULT_TOKENS, REPLY_TOKENS = 300, 250, 40
HEALTHY_SEARCHES = 3


class Research:
    """The world: what the agent searched for and the answer it submitted."""

    def __init__(self) -> None:
        self.searches: list[str] = []
        self.answer: str | None = None


@tool
def search(world: Research, query: str) -> list[str]:
    """Search the knowledge base for ``query``."""
    world.searches.append(query)
    return [f"hit {len(world.searches)} for {query!r}"]


@tool(side_effect=True)
def submit(world: Research, answer: str) -> str:
    """Submit the final answer."""
    world.answer = answer
    return "submitted"


TOOLS = [search, submit]


def check(world: Research, output: Any) -> bool:
    """The task is done when an answer was submitted."""
    return world.answer is not None


class RunawayAgent:
    """An agent that runs away (loops on ``search`` forever) with probability ``p``, drawn from ``env.rng``.

    What ``runaway_agent`` returns: an instance of a module-level class, not a closure, so that it pickles
    by reference and runs under ``isolation: process``.
    """

    def __init__(self, p: float = 0.02, *, model: str = "gpt-4o-mini"):
        self.p = p
        self.model = model
        self.__name__ = "runaway_agent"

    def __call__(self, task: str, env: Any) -> Any:
        p, model = self.p, self.model
        stuck = bool(env.rng.random() < p)
        context = PROMPT_TOKENS
        searches = 0
        while True:  # only the budget stops a stuck trial
            env.record_usage(input_tokens=context, output_tokens=REPLY_TOKENS, model=model)
            if not stuck and searches >= HEALTHY_SEARCHES:
                try:
                    return env.tools["submit"](f"answer to {task!r}")
                except Exception:  # a failed submit is retried on the next turn, like a real loop would
                    pass
            else:
                try:
                    env.tools["search"](task)
                    searches += 1
                except Exception:  # swallowing every error is what makes real loops run away
                    pass
            context += RESULT_TOKENS

    def __repr__(self) -> str:
        return f"runaway_agent({self.p!r}, model={self.model!r})"


def runaway_agent(p: float = 0.02, *, model: str = "gpt-4o-mini") -> Callable[[str, Any], Any]:
    """An agent that runs away (loops on ``search`` forever) with probability ``p``, drawn from ``env.rng``.

    A ``RunawayAgent``: it pickles, so it runs under ``isolation: process`` too.
    """
    return RunawayAgent(p, model=model)


#: The agent scenarios/budget_runaway.yaml runs: 2% of its trials run away.
agent = runaway_agent(0.02)


def scenario(p: float = 0.02, **overrides: Any) -> Scenario:
    """The runaway scenario in Python: per-task budget 20,000 tokens, per-request 4,000."""
    settings: dict[str, Any] = dict(
        name="budget-runaway", agent=runaway_agent(p), task="Find the refund policy", world=Research,
        tools=TOOLS, check=check, budget=Budget(per_request_tokens=4000, per_task_tokens=20_000),
        expect={"budget_exceeded_rate": "<= 0.05", "completion_rate": ">= 0.90"}, trials=400, seed=3)
    settings.update(overrides)
    return Scenario(**settings)
