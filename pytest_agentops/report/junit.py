"""A campaign's JUnit XML properties: what ``record_property`` adds to the test's ``<properties>`` (pytest's
``--junitxml``), so CI systems that read JUnit show the verdicts next to the test.

``agentops:<scenario>:<metric key>`` = ``<verdict> estimate=<e> bound=<b>`` per verdict (as since 0.1), and per
campaign ``agentops:<scenario>:campaign`` (passed or not, trials, maximum, seed, profile), the threshold and
bound side of each verdict, a warning when a configured fault kind was never delivered, and the command that
replays each of the worst trials (``agentops:<scenario>:replay:trial-N``).
"""

from __future__ import annotations

from ..errors import hide_own_frames
from ..harness.secrets import redact_text
from ..result import CampaignResult
from .attribution import fault_delivery

__tracebackhide__ = hide_own_frames


#: how the names of a campaign's JUnit properties begin
JUNIT_PREFIX = "agentops:"


def junit_properties(result: CampaignResult, worst: int = 3) -> list[tuple[str, str]]:
    """(name, value) pairs for ``node.user_properties`` (what ``record_property`` appends)."""
    prefix = f"{JUNIT_PREFIX}{result.scenario}"
    status = "passed" if result.passed else "failed"
    mode = "smoke" if result.smoke else f"replay of trial {result.replay}" if result.replay is not None else "campaign"
    props = [(f"{prefix}:campaign", f"{status} {mode} trials={result.n}/{result.max_trials} seed={result.seed} "
                                    f"profile={result.profile} confidence={result.confidence:g}"
                                    + (" stopped_early" if result.stopped_early else ""))]
    for v in result.verdicts:
        props.append((f"{prefix}:{v.key}", f"{v.verdict} estimate={v.estimate} bound={v.bound}"))
        props.append((f"{prefix}:{v.key}:threshold", f"{v.expression} ({v.bound_side or 'count'} bound, "
                                                     f"{v.method} at {v.confidence:g}, n={v.n})"))
    if not result.smoke and result.skipped is None:
        never = [e["fault"] for e in fault_delivery(result)["never_delivered"] if e["implausible"]]
        if never:
            props.append((f"{prefix}:faults_never_delivered", ", ".join(never)))
    for record in result.worst_trials(worst, traces=False):
        props.append((f"{prefix}:replay:{record.id}", result.replay_hint(record)))
    return [(redact_text(name), redact_text(value)) for name, value in props]  # (a name may hold a secret)
