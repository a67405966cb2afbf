"""The fast post-processing (metrics, verdicts, the JSON report) gives exactly what the plain code gave.

Each fast path is checked against a reference kept here, the code it replaced, on random inputs and on the
edge cases: the betting bounds (``_bounds_loop``-style loop over the values), ``metrics.collect`` and
``summarize`` (each record through ``extract``), the judges fed all records at once (``add`` one by one), the
memoized derived values of a ``CampaignResult``, and the JSON report's text (``json.dumps`` of the plain,
redacted dicts), with secrets in the environment and fields of unexpected types.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

import numpy as np
import pytest

# (run_campaign at import, as the other test modules have it: the engine's process patches are then registered
# before pytester's in-process runs, which drop the modules they import; json_report imports process.gc_hold)
from pytest_agentops import Scenario, run_campaign, stats
from pytest_agentops._frozen import FrozenMap
from pytest_agentops.expect import Expectation
from pytest_agentops.harness import secrets
from pytest_agentops.judge import MeanJudge, judge
from pytest_agentops.metrics import _SCOPED, QUANTILES, REGISTRY, MetricData, MetricSummary, collect, summarize
from pytest_agentops.records import OUTCOMES, TraceEvent, TrialRecord
from pytest_agentops.report.json_report import report_dict, write_report
from pytest_agentops.result import CampaignResult, failure_classes
from pytest_agentops.settings.faults import CrashRecord
from pytest_agentops.settings.injection import InjectionRecord
from pytest_agentops.settings.layers import BudgetRecord
from pytest_agentops.settings.model import ModelRecord
from pytest_agentops.settings.network import NetworkRecord
from pytest_agentops.settings.trajectory import TrajectoryRecord, register_rule_metrics

# ------------------------------------------------------------------------------------ references


def ref_betting_bounds(values, confidence=0.95, grid=401):
    """``stats.betting_bounds`` as it was: the loop over the values, the whole grid at each."""
    cap = stats.betting.STAKE_CAP
    xs = np.clip(np.asarray(list(values), dtype=float), 0.0, 1.0)
    if xs.size == 0:
        return 0.0, 1.0
    threshold = math.log(1.0 / (1.0 - confidence))
    ms = np.linspace(0.0, 1.0, grid)
    log_up = np.zeros(grid)
    log_down = np.zeros(grid)
    max_up = np.zeros(grid)
    max_down = np.zeros(grid)
    total = sq = 0.0
    for i, x in enumerate(xs):
        mean = (0.5 + total) / (i + 1)
        var = (0.25 + sq) / (i + 1)
        gap_up = np.maximum(mean - ms, 0.0)
        gap_down = np.maximum(ms - mean, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.minimum(gap_up / (var + gap_up ** 2), np.where(ms > 0, cap / ms, 0.0))
            down = np.minimum(gap_down / (var + gap_down ** 2), np.where(ms < 1, cap / (1 - ms), 0.0))
        log_up += np.log1p(up * (x - ms))
        log_down += np.log1p(-down * (x - ms))
        np.maximum(max_up, log_up, out=max_up)
        np.maximum(max_down, log_down, out=max_down)
        total += x
        sq += (x - (0.5 + total) / (i + 2)) ** 2
    rejected_low = max_up >= threshold
    rejected_high = max_down >= threshold
    rejected_low[0] = rejected_high[-1] = True
    kept_low = np.nonzero(~rejected_low)[0]
    kept_high = np.nonzero(~rejected_high)[0]
    lower = float(ms[kept_low[0] - 1]) if kept_low.size and kept_low[0] > 0 else (0.0 if kept_low.size else 1.0)
    upper = float(ms[kept_high[-1] + 1]) if kept_high.size and kept_high[-1] < grid - 1 else (
        1.0 if kept_high.size else 0.0)
    return lower, upper


def ref_collect(records, names=None):
    """``metrics.collect`` as it was: every record through each metric's ``extract``."""
    records = list(records)
    out = {}
    for name in REGISTRY if names is None else names:
        defn = REGISTRY[name]
        extract = defn.extract
        if defn.kind == "distribution":
            values = tuple(float(v) for r in records if (v := extract(r)) is not None)
            out[name] = MetricData(name, "distribution", 0, len(values), values)
            continue
        k = n = 0
        shares = []
        if defn.kind == "rate":
            for record in records:
                successes, chances = extract(record)
                k += successes
                n += chances
                if chances:
                    shares.append(successes / chances)
            if not defn.per_trial:
                out[name] = MetricData(name, "rate", k, n, shares=tuple(shares))
                continue
        else:
            for record in records:
                violations, had_chance = extract(record)
                k += violations
                n += 1 if had_chance else 0
        out[name] = MetricData(name, defn.kind, k, n)
    return out


def ref_summarize(data, confidence=0.95):
    """``metrics.summarize`` as it was."""
    unit = REGISTRY[data.name].counting_unit if data.name in REGISTRY else "trial"
    if data.kind == "rate":
        if data.n == 0:
            return MetricSummary(data.name, "rate", 0, None, counting_unit=unit)
        if data.name in REGISTRY and not REGISTRY[data.name].per_trial:
            lower, upper = ref_betting_bounds(data.shares, confidence)
            return MetricSummary(data.name, "rate", data.n, sum(data.shares) / len(data.shares), lower, upper,
                                 total=data.k, counting_unit=unit, trials=len(data.shares), pooled=data.k / data.n)
        b = stats.rate_bounds(data.k, data.n, confidence)
        return MetricSummary(data.name, "rate", data.n, b.estimate, b.lower, b.upper, b.wilson_lower,
                             b.wilson_upper, total=data.k, counting_unit=unit)
    if data.kind == "distribution":
        if not data.samples:
            return MetricSummary(data.name, "distribution", 0, None)
        qs = {f"p{round(q * 100)}": stats.quantile(data.samples, q) for q in QUANTILES}
        return MetricSummary(data.name, "distribution", data.n, qs["p50"], quantiles=FrozenMap(qs),
                             mean=sum(data.samples) / data.n, max=max(data.samples),
                             infinite=sum(1 for v in data.samples if math.isinf(v)), counting_unit=unit)
    upper = stats.zero_violation_upper(data.n, confidence) if data.k == 0 else None
    return MetricSummary(data.name, "count", data.n, float(data.k), upper=upper, total=data.k, counting_unit=unit)


_SEVERITY = {"error": 0, "timed_out": 1, "crashed": 2, "budget_exceeded": 3, "failed": 4, "escalated": 5,
             "completed": 6}
_CLASS_ORDER = ("error", "failed", "violation", "timed_out", "budget_exceeded", "crashed", "escalated")


def ref_worst_trials(records, limit=5):
    """``CampaignResult.worst_trials`` as it was."""
    bad = [r for r in records if not r.ok]
    examples = {}
    for r in bad:
        for cls in failure_classes(r):
            examples.setdefault(cls, r)
    order = {cls: i for i, cls in enumerate(_CLASS_ORDER)}
    first = []
    for cls in sorted(examples, key=lambda c: (order.get(c.partition(":")[0], len(order)), c)):
        if examples[cls] not in first:
            first.append(examples[cls])
    rest = sorted((r for r in bad if r not in first),
                  key=lambda r: (not r.violations, _SEVERITY.get(r.outcome, 9), r.index))
    return first + rest[:max(0, limit - len(first))]


# ------------------------------------------------------------------------------------ strict equality


def same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down, floats to the bit (0.0 is not -0.0; NaN is NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a.hex() == b.hex() if not (math.isnan(a) and math.isnan(b)) else True
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, (dict, FrozenMap)):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


# ------------------------------------------------------------------------------------ random records

SECRET = 'hunter2-"quoted"\\é-secret'  # a secret with a quote, a backslash and a non-ASCII letter
SHAPES = ("sk-abcdefgh12345", "Bearer tok.en", "[redacted]")


def random_text(rng: random.Random) -> str:
    return rng.choice(["", "ok", "5", "check(world, output) returned False", "timeout on t3", f"uses {SECRET}",
                       f"key {rng.choice(SHAPES)} here", "trial-7", "näive ünïcode", 'a "quote"', "100%", "%s %d",
                       "line\nbreak", "tab\t", "\x00nul"])


def random_layers(rng: random.Random) -> dict[str, Any]:
    layers: dict[str, Any] = {}
    if rng.random() < 0.8:
        calls = {name: rng.randint(0, 2) for name in rng.sample(["r1", "r2", "t1_after_t0"], rng.randint(0, 2))}
        violations = {name: rng.randint(0, 2) for name in calls if rng.random() < 0.5}
        layers["trajectory"] = TrajectoryRecord(steps=rng.randint(0, 9), model_steps=rng.randint(0, 2),
                                                redundant_calls=rng.choice([0, 0, 1]), loops=rng.choice([0, 0, 1]),
                                                rule_calls=calls, rule_violations=violations,
                                                side_effects=rng.choice([0, 1, 2]),
                                                duplicate_side_effects=rng.choice([0, 0, 1]))
    if rng.random() < 0.6:
        layers["budget"] = BudgetRecord(alerts=rng.choice([0, 0, 1, 2]),
                                        exceeded=rng.choice([None, None, "tokens", SECRET]))
    if rng.random() < 0.3:
        layers["crash"] = CrashRecord(crashes=rng.choice([0, 1]), restarts=rng.choice([0, 1]),
                                      crash_step=rng.choice([None, 1, 2]), crash_point=rng.choice([None, "after"]),
                                      tokens_at_crash=rng.choice([None, 0, 50]),
                                      duplicate_side_effects=rng.choice([0, 1]), exit_codes=rng.choice([(), (-9,)]))
    if rng.random() < 0.3:
        layers["model"] = ModelRecord(attempts=rng.randint(0, 3),
                                      context_utilization=rng.choice([None, 0.5, 1.0, 0.0, -0.0, 1 / 3]))
    if rng.random() < 0.3:
        layers["injection"] = InjectionRecord(planted=rng.choice([0, 1, 2]),
                                              actions=rng.choice([(), ("ok",), ("ok", "blocked")]))
    if rng.random() < 0.2:
        layers["network"] = NetworkRecord(blocked=rng.choice([(), ("example.com",), ("a.test", "example.com")]))
    return layers


def random_trace(rng: random.Random) -> tuple[TraceEvent, ...]:
    events = []
    for seq in range(rng.randint(0, 6)):
        data = rng.choice([{}, {"destructive": False, "arguments": {"x": 1}, "result": 1},
                           {"call": seq, "fid": f"tool:t3:{seq}"}, {"api_key": "k", "note": SECRET},
                           {"nested": [{"a": (1, 2)}, "sk-abcdefgh123"]}, {"reason": random_text(rng)}])
        tokens = rng.choice([(0, 0), (10, 5), (0, 3)])
        events.append(TraceEvent(seq, rng.choice([0.0, 1.5, 30.0, 1 / 3, 1e-7]), rng.choice(["tool_call", "fault"]),
                                 rng.choice(["t0", "t3", SECRET]), rng.choice(["ok", "timeout"]), *tokens,
                                 data=FrozenMap(data)))
    return tuple(events)


def random_record(rng: random.Random, index: int, scenario: str = "peers") -> TrialRecord:
    outcome = rng.choice(["completed"] * 6 + list(OUTCOMES))
    calls = rng.randint(0, 9)
    attempts = rng.choice([0, 0, 0, 1, 2])
    trace = random_trace(rng)
    kept = rng.random() < 0.7
    return TrialRecord(
        scenario, index, rng.getrandbits(63), outcome, reason=random_text(rng) if outcome != "completed" else "",
        input_tokens=rng.choice([0, 0, 120, 4000]), output_tokens=rng.choice([0, 0, 30]),
        cost_usd=rng.choice([0.0, 0.0, 0.00123456789012, -0.0, 2.5]), tool_calls=calls,
        tool_failures=rng.randint(0, calls), destructive_attempts=attempts,
        unconfirmed_destructive=rng.randint(0, attempts), blocked_calls=rng.randint(0, attempts),
        escalated_at_s=rng.choice([None, None, 3.0, 0.0]), unrecovered_fault_s=rng.choice([None, None, 0.0, 1.25]),
        duration_s=rng.choice([0.0, 30.0, 1e-9, 12.3456789]),
        faults=tuple(rng.choice(["t3:rate_limit", "t3:timeout", SECRET]) for _ in range(rng.choice([0, 0, 1, 3]))),
        violations=tuple(rng.choice(["unconfirmed_destructive_call:delete", "rule:t1"]) for _ in
                         range(rng.choice([0, 0, 0, 1]))),
        output=random_text(rng), default_priced=rng.choice([(), (), ("gpt-x",)]), layers=random_layers(rng),
        trace=trace if kept else (), skeleton=() if kept else tuple(("tool_call", "t0", "ok", False) for _ in trace))


def odd_record(rng: random.Random, index: int) -> TrialRecord:
    """A record with a field of a type the harness never makes (a bool count, an int cost, a list of faults)."""
    record = random_record(rng, index)
    change = rng.choice([{"tool_calls": True}, {"cost_usd": 1}, {"faults": ["x", 1]}, {"escalated_at_s": 2},
                         {"duration_s": 5}, {"output": 7}, {"index": np.int64(index)}, {"seed": True},
                         {"violations": (("nested", SECRET),)}, {"reason": None}])
    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    fields.update(change)
    record = TrialRecord.__new__(TrialRecord)
    for name, value in fields.items():
        object.__setattr__(record, name, value)
    return record


@pytest.fixture(autouse=True)
def _secret_in_the_environment(monkeypatch):
    monkeypatch.setenv("POST_IDENTICAL_API_TOKEN", SECRET)
    monkeypatch.setenv("POST_IDENTICAL_PASSWORD", "[redacted]")
    secrets.refresh()
    yield
    monkeypatch.delenv("POST_IDENTICAL_API_TOKEN")
    monkeypatch.delenv("POST_IDENTICAL_PASSWORD")
    secrets.refresh()


# ------------------------------------------------------------------------------------ betting bounds


def _betting_cases() -> list[list[float]]:
    rng = np.random.default_rng(11)
    grid = np.linspace(0.0, 1.0, 401)
    cases: list[list[float]] = [[], [0.5], [0.0], [1.0], [0.0] * 40, [1.0] * 40, [0.0] * 700, [1.0] * 700,
                                list(grid), list(grid[::-1]), [-1.0, 2.0, 0.5], [math.inf, -math.inf, 0.25],
                                [float("nan"), 0.3, 0.9], [0.9] * 30 + [float("nan")] + [0.9] * 30]
    for n in (1, 2, 3, 31, 32, 33, 100, 517, 2000):
        cases.append(list(rng.uniform(0, 1, n)))
        cases.append(list((rng.uniform(0, 1, n) < rng.uniform()).astype(float)))
        cases.append(list(rng.choice(grid, n)))
        cases.append(list(rng.choice([0.0, 1.0, 0.6, 0.8, 5 / 7], n, p=[0.02, 0.86, 0.04, 0.04, 0.04])))
        cases.append(list(rng.beta(rng.uniform(0.2, 5), rng.uniform(0.2, 5), n)))
    # longer than a step of the candidates near a bound, and than the narrowing point
    cases.append(list(rng.choice([0.0, 1.0, 0.75], 9000, p=[0.05, 0.9, 0.05])))
    # every value above (below) some candidates, which are then never rejected: on a grid point, between two
    cases += [[0.75] * 200, [0.9] * 500, [0.25] * 300, [0.75] * 50 + [1.0] * 50, [1.0] * 1000,
              list(rng.uniform(0.6, 1.0, 300)), list(rng.uniform(0.0, 0.3, 300)), list(rng.uniform(0.5005, 1.0, 64))]
    return cases


@pytest.mark.parametrize("case", range(len(_betting_cases())))
def test_betting_bounds_are_those_of_the_loop_over_the_values(case):
    values = _betting_cases()[case]
    rng = random.Random(case)
    for confidence, grid in ((0.95, 401), (rng.choice([0.5, 0.8, 0.99, 0.999]), rng.choice([2, 3, 11, 101, 1001]))):
        if len(values) > 2000 and grid != 401:
            continue  # (the reference loop is slow: one long case at the default grid)
        expected = ref_betting_bounds(values, confidence, grid)
        got = stats.betting_bounds(values, confidence, grid)
        assert same(got, expected), (len(values), confidence, grid)
        assert same(stats.betting_lower(values, confidence, grid), expected[0])
        assert same(stats.betting_upper(values, confidence, grid), expected[1])


def test_betting_bounds_keep_the_loops_answers_to_odd_arguments():
    for confidence in (0.0, -1.0):
        assert stats.betting_bounds([0.5, 0.7], confidence) == ref_betting_bounds([0.5, 0.7], confidence)
    assert stats.betting_bounds([0.3, 0.5], 0.95, 1) == ref_betting_bounds([0.3, 0.5], 0.95, 1)
    for bad in ((0.95, 0), (1.0, 401)):
        with pytest.raises(Exception) as want:
            ref_betting_bounds([0.3], *bad)
        with pytest.raises(want.type):
            stats.betting_bounds([0.3], *bad)


# ------------------------------------------------------------------------------------ metrics


def test_a_distributions_quantiles_keep_the_sign_of_the_zero_each_call_of_its_own_picks():
    """Each quantile is the element a call of its own picks from the sorted samples, to the bit: a review found
    that one call for the three partitions the samples otherwise, and where -0.0 and 0.0 are mixed it picked
    the other zero (1,824 of 60,000 arrays), which the report shows (``-0.0`` is kept)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 120))
        pool = [-0.0, 0.0] if rng.random() < 0.7 else [-0.0, 0.0, 1.0, -2.5]
        samples = tuple(float(x) for x in rng.choice(pool, n))
        got = summarize(MetricData("x", "distribution", 0, n, samples)).quantiles
        arr = np.sort(np.asarray(samples, dtype=np.float64))
        for q in QUANTILES:  # (``same``: to the bit, -0.0 is not 0.0)
            assert same(got[f"p{round(q * 100)}"], float(np.quantile(arr, q, method="inverted_cdf"))), (samples, q)


@pytest.mark.parametrize("seed", range(6))
def test_collect_and_summaries_are_those_of_the_records_one_by_one(seed):
    rng = random.Random(seed)
    register_rule_metrics("t1_after_t0")
    register_rule_metrics("r1")
    n = rng.choice([0, 1, 2, 40, 300])
    records = [random_record(rng, i) for i in range(n)]
    if seed % 2:  # odd types the metrics may not read: the reference decides what happens
        records += [odd_record(rng, n + i) for i in range(3)]
    try:
        expected = ref_collect(records)
    except Exception as error:
        with pytest.raises(type(error)):
            collect(records)
        return
    got = collect(iter(records))  # (any iterable)
    assert list(got) == list(expected)
    for name in expected:
        assert same(got[name], expected[name]), name
        try:
            want = ref_summarize(expected[name])
        except Exception as error:
            with pytest.raises(type(error)):
                summarize(got[name])
            continue
        assert same(summarize(got[name]), want), name
    shown = {name for name, d in expected.items() if d.n or (d.kind == "count" and name not in _SCOPED)}
    assert set(got) >= shown


def test_summaries_of_edge_distributions():
    for samples in ((0.0,), (-0.0, 0.0), (0.0, -0.0), (math.inf, 1.0), (math.inf,), (1.0, 2.0, 2.0, 3.0),
                    tuple(float(i % 7) for i in range(1001))):
        data = MetricData("tokens_per_task", "distribution", 0, len(samples), samples)
        assert same(summarize(data), ref_summarize(data)), samples
    data = MetricData("tokens_per_task", "distribution", 0, 2, (1.0, math.nan))
    with pytest.raises(ValueError):
        ref_summarize(data)
    with pytest.raises(ValueError):
        summarize(data)


# ------------------------------------------------------------------------------------ judges


EXPRESSIONS = [("completion_rate", ">= 0.9"), ("completion_rate", ">= 0.9, fail below 0.7"),
               ("escalation_rate", "<= 0.1"), ("budget_exceeded_rate", "< 0.2"), ("tokens_per_task.p95", "<= 4000"),
               ("tokens_per_task.p50", ">= 100"), ("pass^3", ">= 0.5"), ("cost_usd_per_task.mean", "<= 1.0, cap 3.0"),
               ("steps_per_task.mean", ">= 2, cap 10"),
               ("unconfirmed_destructive_calls", "== 0"), ("unconfirmed_destructive_calls", "<= 3"),
               ("rule_violations", "< 2"), ("tool_success_rate", ">= 0.8"), ("loop_rate", "<= 0.05")]


def _state(j) -> dict[str, Any]:
    return {k: v for k, v in vars(j).items() if k not in ("exp", "defn", "rule", "test")} | (
        {"test": dataclasses.astuple(j.test)} if isinstance(j, MeanJudge) else {})


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("key,expression", EXPRESSIONS)
def test_judges_fed_all_records_at_once_reach_the_state_of_one_by_one(seed, key, expression):
    rng = random.Random(seed)
    exp = Expectation.parse(key, expression)
    n = rng.choice([0, 1, 7, 60, 400])
    p = rng.choice([0.5, 0.9, 0.99])
    records = []
    for i in range(n):
        r = random_record(rng, i)
        if rng.random() < p:
            r = dataclasses.replace(r, outcome="completed", violations=())
        records.append(r)
    for sequential in (False, True):
        for max_trials in {n or 1, n + 50}:
            one, all_ = (judge(exp, max_trials=max_trials, confidence=0.95, sequential=sequential) for _ in "ab")
            for r in records:
                one.add(r)
            all_.add_all(records)
            assert same(_state(all_), _state(one)), (sequential, max_trials)
            for complete in (False, True):
                assert same(all_.verdict(complete=complete), one.verdict(complete=complete))


def test_a_judge_fed_at_once_fails_where_one_by_one_fails():
    """A rate counting trials that gives a trial two chances: the error at that trial, the state before it."""
    from pytest_agentops.errors import ConfigError
    from pytest_agentops.metrics import MetricDef, register_metric

    defn = MetricDef("post_identical_calls", "rate", lambda r: (r.tool_calls, r.tool_calls), "calls")
    register_metric(defn)
    try:
        exp = Expectation.parse("post_identical_calls", ">= 0.5")
        records = [TrialRecord("x", i, 0, "completed", tool_calls=1 if i != 3 else 2) for i in range(6)]
        one, all_ = (judge(exp, max_trials=6, confidence=0.95, sequential=True) for _ in "ab")
        with pytest.raises(ConfigError) as want:
            for r in records:
                one.add(r)
        with pytest.raises(ConfigError) as got:
            all_.add_all(records)
        assert str(got.value) == str(want.value) and same(_state(all_), _state(one))
    finally:  # (a metric left registered would show in every later campaign of this process)
        REGISTRY.pop(defn.name, None)


# ------------------------------------------------------------------------------------ results and reports


def _result(records, scenario="peers") -> CampaignResult:
    from pytest_agentops.metrics import summarize_all

    return CampaignResult(scenario=scenario, seed=1, max_trials=len(records), confidence=0.95, profile=None,
                          records=tuple(records), metrics=FrozenMap(summarize_all(records)), verdicts=())


@pytest.mark.parametrize("seed", range(5))
def test_derived_values_of_a_result_are_those_of_its_records(seed):
    rng = random.Random(seed)
    records = [random_record(rng, i) for i in range(rng.choice([0, 1, 50, 400]))]
    records += records[: rng.randint(0, 3)]  # equal records: the worst trials' examples by equality
    result = _result(records)
    from collections import Counter

    counts = Counter(r.outcome for r in records)
    assert same(result.outcome_counts, FrozenMap({o: counts[o] for o in OUTCOMES if counts[o]}))
    for limit in (0, 1, 5, 50):
        assert result.worst_trials(limit) == ref_worst_trials(records, limit)
        assert result.worst_trials(limit) == ref_worst_trials(records, limit)  # (remembered)
    assert result._blocked_hosts() == sorted({h for r in records for h in r.extra.get("blocked_hosts", ())})


def _plain_report_text(results, with_traces) -> str:
    return json.dumps(report_dict(results, with_traces=with_traces), indent=2, sort_keys=True, allow_nan=False) + "\n"


@pytest.mark.parametrize("seed", range(8))
def test_the_report_is_the_text_of_the_plain_redacted_dicts(seed, tmp_path):
    rng = random.Random(seed)
    n = rng.choice([0, 1, 2, 255, 256, 257, 700])
    records = [random_record(rng, i) for i in range(n)]
    if seed % 3 == 1:  # passing trials much alike (their text is written once)
        records = [dataclasses.replace(r, outcome="completed", violations=(), reason="", faults=(),
                                       layers={"budget": BudgetRecord()}) for r in records]
    if seed % 3 == 2:
        records += [odd_record(rng, n + i) for i in range(4)]
    results = [_result(records, f"s{seed}"), _result(records[: n // 2], f"t{seed}")]
    for with_traces in (False, True):
        try:
            expected = _plain_report_text(results, with_traces)
        except (TypeError, ValueError) as error:
            with pytest.raises(type(error)):
                write_report(tmp_path / "r.json", results, with_traces=with_traces)
            continue
        write_report(tmp_path / "r.json", results, with_traces=with_traces)
        assert (tmp_path / "r.json").read_text(encoding="utf-8") == expected
        # the same campaigns as the pytest plugin and its xdist workers give them: dicts (a node id added)
        dicts = [dict(r.to_dict(with_traces=with_traces), nodeid=f"test_{i}.py::t") for i, r in enumerate(results)]
        write_report(tmp_path / "d.json", dicts)
        assert (tmp_path / "d.json").read_text(encoding="utf-8") == _plain_report_text(dicts, False)


def test_the_terminal_table_of_a_result_is_that_of_its_dict():
    from pytest_agentops.report.terminal import campaign_table

    rng = random.Random(5)
    for n in (0, 1, 60):
        result = _result([random_record(rng, i) for i in range(n)])
        assert campaign_table(result) == campaign_table(result.to_dict())


def test_the_report_with_a_secret_in_every_kind_of_string(tmp_path, monkeypatch):
    """Ids, keys, layer data and trace data with secrets in them, and a secret that is a trial's id."""
    monkeypatch.setenv("POST_IDENTICAL_ID_TOKEN", "trial-1000")
    secrets.refresh()
    rng = random.Random(7)
    records = [random_record(rng, i) for i in range(998, 1003)]
    records.append(dataclasses.replace(records[0], index=5, layers={"network": NetworkRecord((SECRET,))}))
    results = [_result(records)]
    for with_traces in (False, True):
        write_report(tmp_path / "r.json", results, with_traces=with_traces)
        assert (tmp_path / "r.json").read_text(encoding="utf-8") == _plain_report_text(results, with_traces)


def test_a_nan_the_report_cannot_write_fails_as_the_plain_writer_does(tmp_path):
    rng = random.Random(3)
    records = [random_record(rng, i) for i in range(10)]
    for change in ({"cost_usd": math.nan}, {"duration_s": math.inf}, {"escalated_at_s": math.nan}):
        bad = [dataclasses.replace(records[0], **change), *records[1:]]
        with pytest.raises(ValueError) as want:
            _plain_report_text([_result(bad)], False)
        with pytest.raises(ValueError) as got:
            write_report(tmp_path / "r.json", [_result(bad)])
        assert str(got.value) == str(want.value)


def test_the_collector_is_paused_while_a_result_is_made_and_written_and_back_after(tmp_path):
    import gc

    from pytest_agentops.process.gc_hold import collector_paused

    seen = []
    real = CampaignResult.build.__func__

    def build(cls, *args, **kwargs):
        seen.append(gc.isenabled())
        return real(cls, *args, **kwargs)

    CampaignResult.build = classmethod(build)
    try:
        result = run_campaign(Scenario(name="gc-paused", agent=lambda task, env: "ok", trials=3, seed=0))
    finally:
        CampaignResult.build = classmethod(real)
    assert seen == [False] and gc.isenabled()
    write_report(tmp_path / "r.json", [result])
    assert gc.isenabled() and collector_paused.holders == 0
    gc.disable()
    try:  # a collector the process turned off stays off
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_judge_of_a_long_rule_fed_at_once_reads_its_lazy_bounds_as_one_by_one():
    """Beyond ``stats.LAZY_LIMIT`` units a rule's boundaries are computed a chunk at a time (``Bounds``)."""
    rng = random.Random(9)
    records = [TrialRecord("x", i, 0, "completed" if rng.random() < 0.97 else "failed") for i in range(5000)]
    for expression in (">= 0.9", "<= 0.5", ">= 0.99"):
        exp = Expectation.parse("completion_rate", expression)
        one, all_ = (judge(exp, max_trials=stats.LAZY_LIMIT + 50_000, confidence=0.95, sequential=True)
                     for _ in "ab")
        assert isinstance(one.rule.pass_at, stats.Bounds)
        for r in records:
            one.add(r)
        all_.add_all(records)
        assert same(_state(all_), _state(one)) and one.decided, expression


def test_the_report_is_written_the_plain_way_when_the_template_is_out_of_date(tmp_path, monkeypatch):
    """A record's dict with a key the template does not know (``TrialRecord.to_dict`` changed): the first
    record written both ways differs, and every record is then written from its dict."""
    rng = random.Random(4)
    results = [_result([random_record(rng, i) for i in range(300)])]
    real = TrialRecord.to_dict

    def to_dict(self, *, with_trace=False, with_extra=True):
        return dict(real(self, with_trace=with_trace, with_extra=with_extra), new_field=self.index % 3)

    monkeypatch.setattr(TrialRecord, "to_dict", to_dict)
    write_report(tmp_path / "r.json", results)
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == _plain_report_text(results, False)
    assert '"new_field": 2' in (tmp_path / "r.json").read_text(encoding="utf-8")
