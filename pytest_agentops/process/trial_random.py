"""The standard library's ``random`` inside a trial: seeded by the trial, so that a replay draws the same.

SDKs and frameworks draw from the module-level ``random`` functions (the openai and anthropic SDKs jitter
their retry backoff with ``random()``; agents pick examples, shuffle tools, sample). Drawn from the
process-wide generator, those numbers differ run to run and between trials running at once, and so do the
virtual times and choices that follow: a failing trial would not replay the same. So while campaigns run,
``random.random``, ``random.choice`` and the other module-level functions (``random.__all__``, and the same
function objects bound in other modules, as ``from random import random``) are stand-ins installed with the
time stand-ins (``time_patch.register_stand_ins``): inside a trial they draw from a ``random.Random`` of the
trial's own, seeded from the trial seed (``random.seed(x)`` there reseeds it); everywhere else, from the
process-wide generator as usual. ``random.Random(...)`` and ``random.SystemRandom`` instances are not
affected.
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Callable
from typing import Any

from .time_patch import register_stand_ins

_GLOBAL = random.random.__self__  # the generator behind the module-level functions


class TrialRandom:
    """A trial's generator, made on first use (most trials never draw from ``random``)."""

    __slots__ = ("_rng", "seed")

    def __init__(self, trial_seed: int):
        self.seed = trial_seed
        self._rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(f"pytest-agentops:{self.seed}")  # str seeds hash the same in every run
        return self._rng


_active: contextvars.ContextVar[TrialRandom | None] = contextvars.ContextVar("pytest_agentops_random", default=None)


def enter_random(trial_random: TrialRandom) -> contextvars.Token[TrialRandom | None]:
    """Make the current context's ``random`` functions draw from ``trial_random`` (undo with ``exit_random``)."""
    return _active.set(trial_random)


def exit_random(token: contextvars.Token[TrialRandom | None]) -> None:
    """Undo ``enter_random``."""
    _active.reset(token)


def _stand_in(name: str) -> Callable[..., Any]:
    real = getattr(random, name)

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        current = _active.get()
        return getattr(_GLOBAL if current is None else current.rng, name)(*args, **kwargs)

    stand_in.__name__ = stand_in.__qualname__ = name
    stand_in.__module__ = "random"
    stand_in.__doc__ = real.__doc__
    return stand_in


#: The module-level functions that are methods of the process-wide generator (``random``, ``choice``, ...).
NAMES: tuple[str, ...] = tuple(name for name in random.__all__
                               if getattr(getattr(random, name, None), "__self__", None) is _GLOBAL)

register_stand_ins(random, {name: _stand_in(name) for name in NAMES})
