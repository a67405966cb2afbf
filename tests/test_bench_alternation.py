"""The order side-by-side benchmarks run their arms in (``tests/benchmarks/alternation.py``): every arm once a
round, and a machine that drifts steadily over the run charges no arm more than another."""

import importlib.util
import statistics
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("alternation", Path(__file__).parent / "benchmarks" / "alternation.py")
alternation = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(alternation)


@pytest.mark.parametrize("rounds", [1, 2, 3, 6])
@pytest.mark.parametrize("arms", [("a", "b"), ("off", "redraw", "stress"), tuple(range(9))])
def test_every_round_runs_every_arm_once_in_turn_reversed(rounds, arms):
    order = list(alternation.alternate(rounds, arms))
    assert len(order) == rounds * len(arms)
    for r in range(rounds):
        got = order[r * len(arms):(r + 1) * len(arms)]
        assert got == (list(arms) if r % 2 == 0 else list(reversed(arms)))


def _measured(order, true_cost, drift):
    """Each arm's measurements, slot by slot: its true cost plus a drift that grows by ``drift`` every slot."""
    runs = {arm: [] for arm in true_cost}
    for slot, arm in enumerate(order):
        runs[arm].append(true_cost[arm] + drift * slot)
    return runs


@pytest.mark.parametrize("rounds", [4, 6, 10])
def test_a_steady_drift_cancels_out_of_the_paired_differences_over_an_even_number_of_rounds(rounds):
    """Two arms of the same true cost on a machine slowing down steadily: run in one order every round, the second
    arm reads a whole slot of drift slower in every round; alternated, the paired differences average zero and
    their median is within half a slot of it (the first order's bias, ``drift``, is the whole slot)."""
    cost, drift = {"off": 1.0, "on": 1.0}, 0.01
    fixed = _measured([arm for _ in range(rounds) for arm in cost], cost, drift)
    alternated = _measured(list(alternation.alternate(rounds, list(cost))), cost, drift)
    fixed_diffs = [b - a for a, b in zip(fixed["off"], fixed["on"], strict=True)]
    alt_diffs = [b - a for a, b in zip(alternated["off"], alternated["on"], strict=True)]
    assert statistics.mean(fixed_diffs) == pytest.approx(drift)  # the bias the fixed order had
    assert statistics.mean(alt_diffs) == pytest.approx(0.0, abs=1e-12)
    assert abs(statistics.median(alt_diffs)) <= drift / 2 + 1e-12
    ratios = [b / a for a, b in zip(alternated["off"], alternated["on"], strict=True)]
    assert sum(r > 1 for r in ratios) == sum(r < 1 for r in ratios) == rounds // 2  # (fixed order: every one > 1)
    assert all(b / a > 1 for a, b in zip(fixed["off"], fixed["on"], strict=True))
    # and with three arms, each arm's mean slot (its share of the drift) is the same
    three = list(alternation.alternate(rounds, ("a", "b", "c")))
    slots = {arm: statistics.mean(i for i, x in enumerate(three) if x == arm) for arm in "abc"}
    assert max(slots.values()) - min(slots.values()) == pytest.approx(0.0)
