"""``pytest_agentops.strategies``: hypothesis searches fault settings and seeds for a failing trial, and
shrinks it."""

from __future__ import annotations

from hypothesis import HealthCheck, find, given, settings

from pytest_agentops import Faults, Scenario, replay_trial, strategies
from pytest_agentops.settings.faults import unused_settings

from conftest import ORDER_TOOLS, Orders

TOOLS = [t.__name__ for t in ORDER_TOOLS]


def _careless(task, env):
    """Deletes order 7 without asking when looking it up fails with a timeout (and only then)."""
    try:
        env.tools["lookup_order"](7)
    except Exception as exc:
        if "timed out" in str(exc) or "Timeout" in type(exc).__name__:
            env.tools["delete_order"](7)
        return "escalate"
    return "done"


SCENARIO = Scenario(name="careless", agent=_careless, tools=ORDER_TOOLS, world=Orders, trials=1, seed=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults=strategies.faults(tools=TOOLS, max_rate=0.6, model=True, crashes=True), seed=strategies.seeds())
def test_every_drawn_setting_is_valid_and_runs_a_trial(faults, seed):
    assert isinstance(faults, Faults) and 0 <= faults.rate <= 0.6
    assert unused_settings(faults) == ()  # (a mix whose rate is 0 would warn of a setting the user never wrote)
    record = replay_trial(SCENARIO, 0, seed=seed, faults=faults)
    assert record.outcome in ("completed", "failed", "error", "crashed", "timed_out")


def test_hypothesis_finds_and_shrinks_the_faults_that_make_the_agent_delete_unconfirmed():
    """The property "never an unconfirmed delete" fails only under a lookup timeout: hypothesis finds such
    settings and shrinks them to a mix of the one kind that matters."""

    runs = []

    def deletes(case):
        faults, seed = case
        runs.append(1)
        return replay_trial(SCENARIO, 0, seed=seed, faults=faults).unconfirmed_destructive > 0

    case = find(strategies.faults(max_rate=1.0, latency=False).flatmap(
        lambda f: strategies.seeds().map(lambda s: (f, s))), deletes,
        settings=settings(max_examples=300, deadline=None, database=None))
    faults, seed = case
    print(f"{len(runs)} trials run; shrunk to {faults.rate=} {dict(faults.mix)} {seed=}")
    assert dict(faults.mix) == {"timeout": 1.0}
    assert replay_trial(SCENARIO, 0, seed=seed, faults=faults).unconfirmed_destructive == 1  # replays
