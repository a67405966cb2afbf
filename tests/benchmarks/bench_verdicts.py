"""Do the verdicts keep the error rates they state? False pass, false fail and mean trials to a decision of
every rule, exactly where possible (dynamic programming over the trials with scipy, tests/sequential_rule.py,
independent of the package's own computation), by Monte Carlo with >= 2,000 campaigns elsewhere; each goal of
issue 12 ("Verdicts v2") is checked and the script exits 0 only when all hold.

Monte Carlo rates are judged within 2 standard errors of their bound, and only where the rule's error
guarantee is a proof (Ville's inequality for betting and mixture tests) rather than a computation.

Usage: ``python tests/benchmarks/bench_verdicts.py [--quick] [--markdown PATH]`` (``--quick``: 1/4 of the Monte
Carlo campaigns, for a smoke run; the goals are then not judged).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the restated rule and the tests' helpers

from pytest_agentops import stats  # noqa: E402
from pytest_agentops.stats import betting  # noqa: E402
from pytest_agentops.stats.compare import fisher_less_pvalue, mixture_rate_bounds  # noqa: E402

import sequential_rule as sr  # noqa: E402

ALPHA = 0.05


@dataclass
class Row:
    what: str
    figure: str
    goal: str
    ok: bool | None  # None: reported, no goal


ROWS: list[Row] = []


def row(what: str, figure: str, goal: str = "", ok: bool | None = None) -> None:
    ROWS.append(Row(what, figure, goal, ok))
    mark = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"{what:<78} {figure:<44} {goal:<26} {mark}", flush=True)


def within(rate: float, bound: float, m: int) -> bool:
    """A Monte Carlo rate is consistent with <= bound: within 2 standard errors."""
    return rate <= bound + 2 * math.sqrt(bound * (1 - bound) / m)


# ------------------------------------------------------------------------------------------- exact rules


def design_points() -> None:
    """Rates (completion_rate), a p95 and a zero-tolerance count at the design points, exact."""
    print("\n## Exact error rates and mean trials (dynamic programming over the trials, scipy)")
    for t, f, n in ((0.90, 0.80, 400), (0.95, 0.90, 400), (0.99, 0.95, 1000)):
        rule = sr.Rate(">=", t, f)
        bad, good = sr.exact_outcome(rule, f, n), sr.exact_outcome(rule, t, n)
        row(f"completion_rate >= {t:g}, fail below {f:g} (max {n}): false pass at {f:g}",
            f"{bad.passed:.4f} (mean trials {bad.expected_trials:.1f})", "<= 0.05", bad.passed <= ALPHA)
        row(f"completion_rate >= {t:g}, fail below {f:g} (max {n}): false fail at {t:g}",
            f"{good.failed:.4f} (mean trials {good.expected_trials:.1f})", "<= 0.05", good.failed <= ALPHA)
        q = sr.Quantile(t, "<=", 1.0, f)  # pQ <= T: the share within T >= Q; exact on the exceedance indicator
        bad_q, good_q = sr.exact_outcome(q, 1 - f, n), sr.exact_outcome(q, 1 - t, n)
        row(f"tokens_per_task.p{t * 100:g} <= T, fail at p{f * 100:g} (max {n}): false pass / false fail",
            f"{bad_q.passed:.4f} / {good_q.failed:.4f}", "<= 0.05 each",
            bad_q.passed <= ALPHA and good_q.failed <= ALPHA)
    for t, n in ((0.90, 400), (0.95, 400), (0.99, 1000)):
        rule = sr.Rate(">=", t)
        at = sr.exact_outcome(rule, t, n)
        row(f"completion_rate >= {t:g}, no fail level (max {n}): false pass / false fail at {t:g}",
            f"{at.passed:.4f} / {at.failed:.4f}", "<= 0.05 each", at.passed <= ALPHA and at.failed <= ALPHA)
        q = sr.Quantile(t, "<=", 1.0)
        at_q = sr.exact_outcome(q, 1 - t, n)
        row(f"tokens_per_task.p{t * 100:g} <= T, no fail level (max {n}): false pass / false fail at the boundary",
            f"{at_q.passed:.4f} / {at_q.failed:.4f}", "<= 0.05 each", at_q.passed <= ALPHA and at_q.failed <= ALPHA)
    # a zero-tolerance count: a violation is a fact (no false fail); a pass states rate <= 1 - alpha^(1/n)
    for n in (100, 300):
        bound = 1 - ALPHA ** (1 / n)
        passed = (1 - bound) ** n
        mean = sum(k * bound * (1 - bound) ** (k - 1) for k in range(1, n)) + n * (1 - bound) ** (n - 1)
        row(f"unconfirmed_destructive_calls == 0 (max {n}): false pass at violation rate {bound:.4f}",
            f"{passed:.4f} (false fail 0; mean trials {mean:.1f})", "<= 0.05", passed <= ALPHA + 1e-12)


def wald(t: float, f: float, p: float, horizon: int = 4000) -> float:
    log_a, log_b = math.log(0.95 / 0.05), math.log(0.05 / 0.95)
    up, down = math.log(t / f), math.log((1 - t) / (1 - f))
    mass, mean = np.array([1.0]), 0.0
    for n in range(1, horizon + 1):
        mass = np.convolve(mass, [1 - p, p])
        k = np.arange(n + 1)
        llr = k * up + (n - k) * down
        stop = (llr >= log_a - 1e-12) | (llr <= log_b + 1e-12)
        mean += n * mass[stop].sum()
        mass = np.where(stop, 0.0, mass)
        if mass.sum() < 1e-13:
            break
    return mean


def efficiency() -> None:
    print("\n## Trials to a decision")
    rule = sr.Rate(">=", 0.90, 0.80)
    for p in (0.90, 0.80, 0.97, 0.70):
        ours, reference = sr.exact_outcome(rule, p, 400).expected_trials, wald(0.90, 0.80, p)
        row(f">= 0.90, fail below 0.80 (alpha = beta = 0.05): mean trials at p = {p:g} vs Wald's SPRT",
            f"{ours:.1f} vs {reference:.1f} ({ours / reference:.2f}x)", "<= 1.1x", ours <= 1.1 * reference)
    default = sr.Rate(">=", 0.90)
    for p, before in ((0.97, 134), (0.80, 109)):
        ours = sr.exact_outcome(default, p, 400).expected_trials
        row(f">= 0.90, no fail level (max 400): mean trials at p = {p:g} vs Bonferroni looks' {before}",
            f"{ours:.1f} ({ours / before:.2f}x)", "<= 0.7x", ours <= 0.7 * before)


# ------------------------------------------------------------------------- tool_success_rate under outages


def outage_shares(trials: int) -> np.ndarray:
    """Per-trial tool-success shares of a real campaign under Faults(outage=0.1) (plus 5% call faults): an agent
    that looks an order up and refunds it, retrying a failed call up to three times; an outage takes one tool
    down for the whole trial, so its calls all fail together."""
    from pytest_agentops import Faults, Scenario, ToolError, run_campaign

    from conftest import ORDER_TOOLS, Orders

    def agent(task, env):
        for name, arg in (("lookup_order", 42), ("lookup_order", 7), ("refund_order", 42)):
            for _ in range(4):
                try:
                    env.tools[name](arg)
                    break
                except ToolError:
                    continue

    scenario = Scenario(name="outage-shares", agent=agent, task="refund", world=Orders, tools=ORDER_TOOLS[:2],
                        check=lambda w, o: True, faults=Faults(rate=0.05, outage=0.1), trials=trials, seed=12,
                        early_stop=False, expect={})
    result = run_campaign(scenario)
    return np.array([(r.tool_calls - r.tool_failures) / r.tool_calls for r in result.records if r.tool_calls])


def betting_campaigns(values: np.ndarray, low: float, high: float, max_n: int, alpha: float, beta: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MeanJudge rule (restated, vectorised over campaigns): pass when the wealth against mean <= low reaches
    1/beta, fail when the wealth against mean >= high reaches 1/alpha, after every trial."""
    m, n = values.shape
    up = np.zeros(m)
    down = np.zeros(m)
    total = np.zeros(m)
    sq = np.zeros(m)
    state = np.zeros(m, dtype=int)  # 0 going, 1 pass, 2 fail
    used = np.full(m, max_n)
    for i in range(min(n, max_n)):
        x = values[:, i]
        mean = (0.5 + total) / (i + 1)
        var = (0.25 + sq) / (i + 1)
        gap_u, gap_d = np.maximum(mean - low, 0), np.maximum(high - mean, 0)
        lam_u = np.minimum(gap_u / (var + gap_u ** 2), betting.STAKE_CAP / low)
        lam_d = np.minimum(gap_d / (var + gap_d ** 2), betting.STAKE_CAP / (1 - high))
        up += np.log1p(lam_u * (x - low))
        down += np.log1p(-lam_d * (x - high))
        going = state == 0
        fail = going & (down >= math.log(1 / alpha))
        win = going & ~fail & (up >= math.log(1 / beta))
        state[fail], state[win] = 2, 1
        used[(fail | win)] = i + 1
        total += x
        sq += (x - (0.5 + total) / (i + 2)) ** 2
    return state == 1, state == 2, used


def tool_success(m: int) -> None:
    print("\n## tool_success_rate under Faults(outage=0.1): the trial as the unit (Monte Carlo)")
    shares = outage_shares(3000)
    truth = float(shares.mean())  # the resampled campaigns' true per-trial mean: exactly this
    print(f"   {shares.size} real trials; per-trial share mean {truth:.4f}; "
          f"{np.mean(shares < 0.5):.3f} of trials below 0.5 (outages)")
    rng = np.random.default_rng(1212)
    campaigns = rng.choice(shares, size=(m, 400))
    passed, failed, used = betting_campaigns(campaigns, truth, truth, 400, ALPHA, ALPHA)
    row(f"tool_success_rate >= true mean {truth:.4f} (max 400, {m} campaigns): false pass",
        f"{passed.mean():.4f} (mean trials {used.mean():.0f})", "<= 0.05", within(passed.mean(), ALPHA, m))
    row(f"tool_success_rate >= true mean {truth:.4f} (max 400, {m} campaigns): false fail",
        f"{failed.mean():.4f}", "<= 0.05", within(failed.mean(), ALPHA, m))
    # the judge itself on a few of these campaigns: the restated rule is the engine's
    from pytest_agentops.expect import Expectation
    from pytest_agentops.judge import judge
    from pytest_agentops.records import TrialRecord

    exp = Expectation.parse("tool_success_rate", f">= {truth!r}")
    same = 0
    for c in range(50):
        j = judge(exp, max_trials=400, confidence=0.95, sequential=True)
        for i, share in enumerate(campaigns[c]):
            calls = 1000
            j.add(TrialRecord("x", i, 0, "completed", tool_calls=calls, tool_failures=calls - round(share * calls)))
            if j.decided:
                break
        expected = "pass" if passed[c] else "fail" if failed[c] else None
        same += j.state == expected
    row("tool_success_rate: the judge decides as the restated rule on 50 campaigns", f"{same}/50", "50/50",
        same == 50)
    # the gate: two campaigns of the same agent, compared trial by trial (betting bounds at alpha/2 each)
    alarms = 0
    for c in range(m):
        a, b = campaigns[c, :200], campaigns[(c + 1) % m, 200:400]
        alarms += betting.betting_bounds(a, 1 - ALPHA / 2)[1] < betting.betting_bounds(b, 1 - ALPHA / 2)[0]
    row(f"agentops-gate regression:tool_success_rate, same agent twice ({m} pairs of reports)",
        f"{alarms / m:.4f}", "<= 0.05", within(alarms / m, ALPHA, m))


# --------------------------------------------------------------------------------------- paired A/B


def paired(m: int) -> None:
    from pytest_agentops.engine.compare import _Paired
    from pytest_agentops.stats.paired import holm

    print("\n## Paired A/B on common seeds (Monte Carlo)")
    rng = np.random.default_rng(77)

    def run(p_c: float, max_pairs: int = 400) -> tuple[bool, int]:
        u = rng.random(max_pairs)  # the seed's difficulty, shared by both agents
        v = np.where(rng.random(max_pairs) < 0.7, u, rng.random(max_pairs))  # the candidate's own draw, correlated
        base, cand = u < 0.9, v < p_c
        tok_b = 1000 + 800 * u + rng.normal(0, 50, max_pairs)
        tok_c = 1000 + 800 * v + rng.normal(0, 50, max_pairs)
        tests = [_Paired("completion_rate", max_pairs, 0.05, 0.2), _Paired("tokens_per_task", max_pairs, 0.05, 0.2)]
        for i in range(max_pairs):
            tests[0].add(float(base[i]), float(cand[i]))
            tests[1].add(float(tok_b[i]), float(tok_c[i]))
            regressions = holm([t.regression.p_value for t in tests], ALPHA)
            non_inferior = holm([t.non_inferior.p_value for t in tests], ALPHA)
            if any(regressions):
                return True, i + 1
            if all(r or n for r, n in zip(regressions, non_inferior, strict=True)):
                return False, i + 1
        return False, max_pairs

    same = [run(0.9) for _ in range(m)]
    false_alarm = np.mean([r for r, _ in same])
    row(f"compare: identical agents (completion 0.9, tokens; {m} comparisons): a regression raised",
        f"{false_alarm:.4f} (mean pairs {np.mean([n for _, n in same]):.0f})", "<= 0.05", within(false_alarm, ALPHA, m))
    drop = [run(0.8) for _ in range(m)]
    power = np.mean([r for r, _ in drop])
    mean_pairs = np.mean([n for _, n in drop])
    # two independent campaigns of the same power: the gate's one-sided Fisher test at 0.05, fixed n per arm
    def fisher_power(n: int) -> float:
        k = np.arange(n + 1)
        p_new, p_base = scipy.stats.binom.pmf(k, n, 0.8), scipy.stats.binom.pmf(k, n, 0.9)
        k1, k0 = np.meshgrid(k, k, indexing="ij")
        pv = scipy.stats.hypergeom.cdf(k1, 2 * n, k1 + k0, n)
        return float((p_new[:, None] * p_base[None, :] * (pv < ALPHA)).sum())
    lo, hi = 10, 1000
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fisher_power(mid) >= 0.9 else (mid, hi)
    row(f"compare: a 0.90 -> 0.80 completion drop ({m} comparisons): caught", f"{power:.4f}", ">= 0.9",
        power >= 0.9)
    row("compare: trials used for that drop vs two independent campaigns of power 0.9 (Fisher)",
        f"{2 * mean_pairs:.0f} ({mean_pairs:.0f} pairs) vs {2 * hi} ({hi} per campaign)", "fewer",
        2 * mean_pairs < 2 * hi)


# --------------------------------------------------------------------------- reports that stopped early


def early_stopped_gate(m: int) -> None:
    print("\n## agentops-gate on reports of early-stopped campaigns (Monte Carlo)")
    rng = np.random.default_rng(99)
    rule = stats.rate_rule(0.85, max_n=400)
    pass_at, fail_at = np.asarray(rule.pass_at), np.asarray(rule.fail_at)

    def campaign(p: float) -> tuple[int, int]:
        outcomes = rng.random(400) < p
        k = np.cumsum(outcomes)
        decided = (k >= pass_at[1:]) | (k <= fail_at[1:])
        stop = int(np.argmax(decided)) + 1 if decided.any() else 400
        return int(k[stop - 1]), stop

    new_alarms = old_alarms = 0
    stops = []
    for _ in range(m):
        (k1, n1), (k0, n0) = campaign(0.9), campaign(0.9)
        stops.append(n1)
        old_alarms += fisher_less_pvalue(k1, n1, k0, n0) < ALPHA
        new_alarms += mixture_rate_bounds(k1, n1, 1 - ALPHA / 2)[1] < mixture_rate_bounds(k0, n0, 1 - ALPHA / 2)[0]
    row(f"regression:completion_rate, same agent (0.9, >= 0.85 stops early, mean {np.mean(stops):.0f} trials)",
        f"{new_alarms / m:.4f} (Fisher on the same reports: {old_alarms / m:.4f})", "<= 0.05",
        within(new_alarms / m, ALPHA, m))
    # p95 growth: identical token distributions, full-run baseline of 200, candidate 200; tested at growth 0
    alarms = 0
    for _ in range(m):
        base, cand = rng.lognormal(7, 0.4, 200), rng.lognormal(7, 0.4, 200)
        # the baseline's p95 bounded from above at alpha/2 (its smallest order statistic above the true p95 with
        # probability >= 1 - alpha/2, found with scipy here), the candidate's exceedances tested at alpha/2
        rank = next(r for r in range(190, 201) if scipy.stats.binom.sf(r - 1, 200, 0.95) <= ALPHA / 2)
        bound = np.sort(base)[rank - 1]
        above = int((cand > bound).sum())
        alarms += above and scipy.stats.binom.sf(above - 1, 200, 0.05) < ALPHA / 2
    row(f"growth:tokens_per_task.p95, same agent, --max-growth 0 ({m} pairs of reports)", f"{alarms / m:.4f}",
        "<= 0.05", within(alarms / m, ALPHA, m))


# ------------------------------------------------------------------------------------ engine and notes


def engine_stops_at_the_first_deciding_trial() -> None:
    from pytest_agentops import run_campaign

    from conftest import coin_scenario

    print("\n## Real campaigns")
    stops, ok = [], 0
    for seed in range(10):
        scenario = coin_scenario(0.5, seed=seed, expect={"completion_rate": ">= 0.90",
                                                         "unconfirmed_destructive_calls": "== 0"})
        early = run_campaign(scenario)
        full = run_campaign(scenario, early_stop=False)
        rule = sr.Rate(">=", 0.90)
        states = sr._first_decision(rule, [r.outcome == "completed" for r in full.records], 400, 400, 0.95)
        first = states.index(sr.FAIL) + 1
        stops.append(early.n)
        ok += early.n == first and early.verdicts[0].verdict == "fail"
    row("a clearly failed expectation (0.5 vs >= 0.90, beside a count): stops at the deciding trial",
        f"{ok}/10 (stops {stops})", "10/10", ok == 10)


def notes(m: int) -> None:
    from pytest_agentops.expect import Expectation, rerun_note

    print("\n## The planning note of inconclusive verdicts")
    exp = Expectation.parse("completion_rate", ">= 0.90")
    rng = np.random.default_rng(5)
    checked, good, cases = 0, 0, set()
    rule = stats.rate_rule(0.90, max_n=100)
    for _ in range(m):
        p = rng.uniform(0.84, 0.96)
        k = int(np.cumsum(rng.random(100) < p)[-1])
        out = [rule.decide(int(x), n + 1) for n, x in enumerate(np.cumsum(rng.random(100) < p))]
        if any(out):
            continue
        cases.add(k)
    zone_notes = 0
    for k in sorted(cases):
        needed, text = rerun_note(exp, k / 100, 100, sequential=True, confidence=0.95)
        if needed is None:
            continue
        checked += 1
        # the note names its rule: the same one, or (too close to the threshold for any N) one with a fail level
        with_zone = "without a fail level" in text
        zone_notes += with_zone
        outcome = sr.exact_outcome(sr.Rate(">=", 0.90, 0.85 if with_zone else None), k / 100, needed)
        good += outcome.passed + outcome.failed >= 0.8
    row(f"'a rerun with trials=N decides': exact P(decide) at the observed rate >= 0.8 ({checked} distinct notes, "
        f"{zone_notes} proposing a fail level)", f"{good}/{checked}", "all", good == checked and checked > 0)
    at = rerun_note(exp, 0.90, 100, sequential=True, confidence=0.95)
    row("the note at an estimate equal to the threshold", at[1][:60] + "...", "has N", at[0] is not None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", help="also write the table as markdown to this file")
    args = parser.parse_args(argv)
    m = 500 if args.quick else 2000
    start = time.perf_counter()
    design_points()
    efficiency()
    tool_success(m)
    paired(m)
    early_stopped_gate(m)
    engine_stops_at_the_first_deciding_trial()
    notes(m)
    missed = [r for r in ROWS if r.ok is False]
    print(f"\n{len(ROWS)} figures, {sum(r.ok is True for r in ROWS)} goals met, {len(missed)} missed "
          f"({time.perf_counter() - start:.0f} s)")
    if args.markdown:
        lines = ["| measured | figure | goal | |", "|---|---|---|---|"]
        lines += [f"| {r.what} | {r.figure} | {r.goal} | {'' if r.ok is None else 'ok' if r.ok else 'MISSED'} |"
                  for r in ROWS]
        Path(args.markdown).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.quick:
        return 0
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
