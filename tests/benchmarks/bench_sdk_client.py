"""A campaign of the demo's careful agent whose model is the openai SDK on ``env.llm.openai()``: wall time per
trial. The SDK client is made per trial, as an agent does; what it costs is the point (an SDK client sets up
TLS, ~20-80 ms of CPU, although the fake model's host is plain http).

Printed: median seconds per trial over ``--repeat`` runs of ``--trials`` trials (faults off, seed fixed), and,
with ``--per-trial-client``, the same campaign with a client built from scratch per trial (``openai.OpenAI``
with its own default HTTP client) for comparison in one run.

Usage: ``python tests/benchmarks/bench_sdk_client.py [--trials 200] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from alternation import alternate

from pytest_agentops import Faults, Scenario, run_campaign
from pytest_agentops.demo import TOOLS, Shop, make_agent, policy, refund_done
from pytest_agentops.demo.agents import ModelReply


class OpenAIModel:
    """The demo's model interface over the openai SDK (chat completions against ``env.llm``)."""

    def __init__(self, client: Any, model: str):
        self.client = client
        self.model = model

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        response = self.client.chat.completions.create(model=self.model, messages=messages, tools=tools)
        message = response.choices[0].message.model_dump(exclude_none=True)
        return ModelReply(message, response.usage.prompt_tokens, response.usage.completion_tokens, response.model,
                          metered=True)


def endpoint_client(env: Any) -> OpenAIModel:
    return OpenAIModel(env.llm.openai(), env.llm.model)


def own_client(env: Any) -> OpenAIModel:
    import openai

    return OpenAIModel(openai.OpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key), env.llm.model)


def per_trial(factory: Any, trials: int) -> float:
    agent = make_agent(factory, careful=True, name=f"sdk_agent_{factory.__name__}")
    scenario = Scenario(name="sdk-client", agent=agent, task="Refund order 42", world=Shop, tools=TOOLS,
                        check=refund_done, llm=policy, faults=Faults.none(), trials=trials, seed=3, early_stop=False)
    started = time.perf_counter()
    result = run_campaign(scenario)
    took = time.perf_counter() - started
    assert result.outcome_counts == {"completed": trials}, result.outcome_counts
    return took / trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="50 trials, 3 repeats")
    args = parser.parse_args()
    trials = 50 if args.quick else args.trials
    per_trial(endpoint_client, 5)  # warm up: imports
    per_trial(own_client, 5)
    ours, theirs = [], []
    for arm in alternate(args.repeat, (endpoint_client, own_client)):  # (the order reversed every other round)
        (ours if arm is endpoint_client else theirs).append(per_trial(arm, trials))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"{trials} trials x {args.repeat}: env.llm.openai() {a * 1000:.1f} ms per trial (median); "
          f"openai.OpenAI() built per trial {b * 1000:.1f} ms per trial; ratio {b / a:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
