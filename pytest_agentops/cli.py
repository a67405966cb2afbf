"""The planning and comparison command lines: ``agentops-plan`` and ``agentops-compare``.

``agentops-plan --threshold 0.90 --rate 0.95 [--fail-level 0.85] [--trials 400]``: how many trials a campaign
needs (``stats.planning.plan``). ``agentops-compare BASELINE CANDIDATE``: shadow-mode A/B on common seeds
(``engine.compare.compare_campaigns``); each side is ``package.module:attr`` naming a ``Scenario``, or a YAML
scenario file (``path.yaml``, or ``path.yaml::name`` when it holds several). Exit codes: 0 (no regression),
1 (a regression), 2 (usage error).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from ._validation import check_trials
from .errors import AgentOpsError, ConfigError, hide_own_frames

__tracebackhide__ = hide_own_frames


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be strictly between 0 and 1")
    return value


def _confidence(text: str) -> float:
    """A confidence level as a campaign takes it: in [0.5, 1) (below a half, a verdict is a coin toss)."""
    value = _number(text)
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0.5, 1), as a campaign's confidence, e.g. 0.95")
    return value


def _margin(text: str) -> float:
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def _growth(text: str) -> float:
    value = _number(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def plan_main(argv: Sequence[str] | None = None) -> int:
    """``agentops-plan``: trials to pass with power 0.8 / 0.95, and the trials used under the sequential rule."""
    from .stats.planning import plan

    p = argparse.ArgumentParser(prog="agentops-plan", description="How many trials a rate (or quantile) "
                                "expectation needs, for a true rate you assume.")
    p.add_argument("--threshold", type=_fraction, required=True,
                   help="the expectation's threshold: rate >= T (for a quantile pQ <= X: Q)")
    p.add_argument("--rate", type=_fraction, required=True,
                   help="the true rate you assume (for a quantile: the share of values within X)")
    p.add_argument("--fail-level", type=_fraction, help="the declared fail level, if any (rate below it must fail)")
    p.add_argument("--confidence", type=_confidence, default=0.95)
    p.add_argument("--power", type=_fraction, default=0.95, help="with a fail level: the power to fail at it")
    p.add_argument("--trials", type=int, help="the campaign's maximum trials (default: what passes with 0.95)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    if args.fail_level is not None and args.fail_level >= args.threshold:
        print("agentops-plan: error: --fail-level must be below --threshold", file=sys.stderr)
        return 2
    if args.trials is not None:  # (a campaign's bounds: 10^11 computed for minutes on end)
        try:
            check_trials(args.trials)
        except ConfigError as exc:
            print(f"agentops-plan: error: --{exc}", file=sys.stderr)
            return 2
    result = plan(args.threshold, args.rate, fail_level=args.fail_level, confidence=args.confidence,
                  power=args.power, max_trials=args.trials)
    print("\n".join(result.lines()))
    return 0


def _scenario(ref: str):
    """A Scenario from ``module:attr`` or a YAML file (``path.yaml`` or ``path.yaml::name``)."""
    from .scenario import Scenario
    from .scenario_file import load_scenarios, resolve_reference

    path, _, name = ref.partition("::")
    if Path(path).is_dir():
        raise AgentOpsError(f"{path}: is a directory; give a scenario file (path.yaml, or path.yaml::NAME for one "
                            "scenario of it) or a reference 'package.module:attr'")
    if path.endswith((".yaml", ".yml")):
        if not Path(path).exists():
            raise AgentOpsError(f"{path}: no such scenario file")
        found = load_scenarios(path)
        if name:
            found = [s for s in found if s.name == name]
        if len(found) != 1:
            names = ", ".join(s.name for s in load_scenarios(path))
            raise AgentOpsError(f"{ref}: name one scenario of the file with '::NAME' (it holds: {names})")
        return found[0]
    value = resolve_reference(ref)
    if not isinstance(value, Scenario):
        raise AgentOpsError(f"{ref} is {value!r}, not a Scenario")
    return value


def compare_main(argv: Sequence[str] | None = None) -> int:
    """``agentops-compare``: a candidate against a baseline on common seeds; exit 1 on a regression."""
    from .engine.compare import compare_campaigns
    from .gate import unwritable

    p = argparse.ArgumentParser(prog="agentops-compare", description="Shadow-mode A/B: run two scenarios on "
                                "identical trial seeds and decide regression or non-inferiority pair by pair.")
    p.add_argument("baseline", help="package.module:attr of a Scenario, or path.yaml[::name]")
    p.add_argument("candidate", help="the same for the candidate")
    p.add_argument("--trials", type=int, help="maximum pairs (default: the baseline's trials)")
    p.add_argument("--seed", type=int, help="campaign seed (default: the baseline's, else fresh)")
    p.add_argument("--profile", help="fault profile: none, low, mid, high")
    p.add_argument("--alpha", type=_fraction, default=0.05, help="false-regression rate over all metrics (Holm)")
    p.add_argument("--margin", type=_margin, default=0.05, help="completion drop still non-inferior (default 0.05)")
    p.add_argument("--growth", type=_growth, default=0.2, help="token/cost growth still non-inferior (default 0.2)")
    p.add_argument("--full", action="store_true", help="run every pair (no early stop)")
    p.add_argument("--json", help="also write the comparison as JSON to this file")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    problem = args.json and unwritable(args.json)
    if problem:  # before the comparison runs, not once it is done
        print(f"agentops-compare: error: --json={args.json}: cannot write the comparison there: {problem}",
              file=sys.stderr)
        return 2
    try:
        baseline, candidate = _scenario(args.baseline), _scenario(args.candidate)
        result = compare_campaigns(baseline, candidate, seed=args.seed, trials=args.trials, profile=args.profile,
                                   alpha=args.alpha, margin=args.margin, growth=args.growth,
                                   early_stop=not args.full)
    except AgentOpsError as exc:
        print(f"agentops-compare: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # (never a verdict: the pairs run so far decide nothing)
        print("agentops-compare: interrupted: no verdict", file=sys.stderr)
        return 130
    print(result.summary())
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
        except OSError as exc:
            print(f"agentops-compare: error: --json={args.json}: cannot write the comparison "
                  f"({type(exc).__name__}: {exc})", file=sys.stderr)
            return 2
    return 0 if result.passed else 1
