"""The side-effect ledger of a trial: which side-effecting tools ran with which arguments, and which ran again.

A tool declared ``side_effect`` (or ``destructive``) must have its effect at most once per trial for the same
arguments: a second run is a *duplicate side effect* (a refund paid twice), whether it came from a retry after a
fault that let the tool run (``malformed``, ``empty``: the effect happened, the agent saw a bad result), from an
agent that simply called again, or from a restart after a crash. A tool declared ``idempotent`` is exempt (a
second run changes nothing more). Each duplicate is a violation ``duplicate_side_effect:TOOL`` and counts in the
metric ``duplicate_side_effects``.

The trajectory layer owns the ledger and gives it to the other layers as the service ``effects``: the crash
layer reads the count for its record (``CrashRecord.duplicate_side_effects``, ``resume_success_rate``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..settings.tools import ToolSpec
    from .layer import TrialPort


def has_effect(spec: ToolSpec) -> bool:
    """Whether a run of the tool is an effect the ledger keeps (side-effecting, and not idempotent)."""
    return (spec.side_effect or spec.destructive) and not spec.idempotent


class EffectLedger:
    """Runs of one trial's side-effecting tools, by tool and arguments (callers hold the trial's lock)."""

    __slots__ = ("_runs", "duplicates", "side_effects", "trial")

    def __init__(self, trial: TrialPort):
        self.trial = trial
        self._runs: dict[tuple[str, Hashable], tuple[int, int]] = {}  # (tool, arguments) -> (first attempt, runs)
        self.side_effects = 0  # runs of side-effecting tools
        self.duplicates = 0  # of which repeated an earlier run's tool and arguments

    def ran(self, spec: ToolSpec, args_key: Hashable, attempt: int) -> int | None:
        """The tool ran with the arguments ``args_key`` (``trajectory.call_key``) in attempt ``attempt``: None for a
        first run; for a duplicate, the attempt of the first run (then ``report`` it)."""
        self.side_effects += 1
        key = (spec.name, args_key)
        seen = self._runs.get(key)
        if seen is None:
            self._runs[key] = (attempt, 1)
            return None
        self._runs[key] = (seen[0], seen[1] + 1)
        self.duplicates += 1
        return seen[0]

    def report(self, spec: ToolSpec, arguments: Mapping[str, Any], first: int, attempt: int) -> None:
        """Trace one duplicate as a violation (outside the caller's lock: it takes the trial's)."""
        self.trial.record_violation("duplicate_side_effect", spec.name, arguments, blocked=False, outcome="duplicate",
                                    first_attempt=first, attempt=attempt)
