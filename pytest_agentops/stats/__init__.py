"""Exact, distribution-free statistics behind pytest-agentops verdicts.

Pure functions on counts and samples; numpy and the standard library only (scipy is a
test-only reference). Conventions, see DESIGN.md "Statistics we stand behind":

* Rates are decided with ONE-SIDED exact Clopper-Pearson bounds at ``confidence``; the
  Wilson score bounds are computed for display beside them, never for a gate (near p=0.99
  the one-sided Wilson lower bound under-covers).
* ``lower`` and ``upper`` are each a one-sided bound at ``confidence``: ``P(p >= lower)``
  holds with probability >= confidence. Taken together ``[lower, upper]`` is a two-sided
  interval at ``2 * confidence - 1``.
* Quantile gates use order statistics (exceedance counts), never the bootstrap.
* Campaigns that stop early are decided trial by trial by sequential rules (``sequential``) whose error rates
  are computed exactly, or, for bounded means, by betting tests that are valid at every trial (``betting``).
"""

from ..errors import hide_own_frames
from .betting import BettingTest, betting_bounds, betting_lower, betting_upper
from .binomial import (
    RateBounds,
    binom_cdf,
    binom_sf,
    clopper_pearson_lower,
    clopper_pearson_upper,
    rate_bounds,
    wilson_lower,
    wilson_upper,
    zero_violation_upper,
)
from .compare import fisher_less_pvalue
from .planning import look_schedule, per_look_alpha, trials_for, trials_to_decide
from .quantiles import (
    min_trials_for_quantile_bound,
    quantile,
    quantile_lower_bound,
    quantile_upper_bound,
    sorted_quantile_and_bound,
)
from .sequential import (
    LAZY_LIMIT,
    Bounds,
    RateRule,
    RuleOutcome,
    fixed_boundaries,
    fixed_first_pass,
    rate_rule,
    sprt_outcome,
)

__tracebackhide__ = hide_own_frames

__all__ = [
    "LAZY_LIMIT",
    "BettingTest",
    "Bounds",
    "RateBounds",
    "RateRule",
    "RuleOutcome",
    "betting_bounds",
    "betting_lower",
    "betting_upper",
    "binom_cdf",
    "binom_sf",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "fisher_less_pvalue",
    "fixed_boundaries",
    "fixed_first_pass",
    "look_schedule",
    "min_trials_for_quantile_bound",
    "per_look_alpha",
    "quantile",
    "quantile_lower_bound",
    "quantile_upper_bound",
    "rate_bounds",
    "rate_rule",
    "sorted_quantile_and_bound",
    "sprt_outcome",
    "trials_for",
    "trials_to_decide",
    "wilson_lower",
    "wilson_upper",
    "zero_violation_upper",
]
