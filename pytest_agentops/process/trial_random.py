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
affected. numpy's legacy module-level functions (``np.random.seed``, ``np.random.rand``, ``np.random.choice``
and the rest of ``np.random``'s functions backed by its global ``RandomState``) are treated the same way,
with a ``RandomState`` of the trial's own; ``np.random.default_rng()`` called without a seed inside a trial
(which would draw fresh OS entropy) is seeded from the trial seed and a per-trial counter, and so is a
``random.seed()`` or ``np.random.seed()`` without a seed. A job the trial hands
to a thread (``asyncio.to_thread``, ``loop.run_in_executor``, anyio's worker threads) draws from a generator of
its own, seeded by the trial and the job's place among the trial's jobs.

numpy's stand-ins are in ``numpy_random``: imported with the engine in pytest's process, and in an isolated
agent's process only once the agent imports ``numpy.random`` (``after_import``), which it may never do.
"""

from __future__ import annotations

import contextvars
import itertools
import random
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import hide_own_frames
from ..lazy_numpy import numpy as numpy_module
from ..vtime.loop import THREAD_JOB_SETUP
from .time_patch import register_stand_ins

if TYPE_CHECKING:
    import numpy as np

__tracebackhide__ = hide_own_frames

_GLOBAL = random.random.__self__  # the generator behind the module-level functions
_NP_TAG = 0x6E756D70  # "nump": keeps numpy's streams apart from anything else seeded from the trial seed
_JOB_TAG = 0x6A6F62  # "job": a thread job's numpy streams, apart from its trial's


#: whose draws a ``TrialRandom`` serves (``role``): the agent's, the world factory's, the check's, a task
#: generator's (seeded by the group's first trial's seed: one task per group), the tools' (every tool call of
#: the trial draws from one, in-process or serving an isolated agent), the fake model policy's, and what else
#: the harness runs for an isolated agent in the test process (a layer's hooks): never a copy of the agent's
#: own stream, which its child process draws from
AGENT, WORLD, CHECK, TASK, TOOLS, POLICY, HARNESS = 0, 1, 2, 3, 4, 5, 6


_COUNTERS_LOCK = threading.Lock()


class TrialRandom:
    """A trial's generator, made on first use (most trials never draw from ``random``)."""

    __slots__ = ("_in_jobs", "_jobs", "_np", "_np_rngs", "_reseeds", "_rng", "job", "role", "seed")

    def __init__(self, trial_seed: int, role: int = AGENT, job: tuple[int, ...] = ()):
        self.seed = trial_seed
        self.role = role  # whose draws: the agent's, the world factory's, the check's (streams apart)
        self.job = job  # which thread job's (``for_job``): its place among its trial's jobs, () for none
        self._rng: random.Random | None = None
        self._np: np.random.RandomState | None = None
        # (the counters of its numpy generators, thread jobs and reseeds: made on first use, ``_counters``)
        self._np_rngs = self._jobs = self._reseeds = None
        self._in_jobs: dict[tuple[int, ...], TrialRandom] | None = None  # (``in_job``)

    def _counters(self) -> tuple[Iterator[int], Iterator[int], Iterator[int]]:
        """The counters of its numpy generators, thread jobs and reseeds, made once (under a lock: two threads
        asking at once get the same counters, so no number is handed out twice)."""
        if self._reseeds is None:
            with _COUNTERS_LOCK:
                if self._reseeds is None:
                    self._np_rngs, self._jobs = itertools.count(), itertools.count(1)
                    self._reseeds = itertools.count()
        return self._np_rngs, self._jobs, self._reseeds  # type: ignore[return-value]

    @property
    def rng(self) -> random.Random:
        if self._rng is None:  # (str seeds hash the same in every run)
            role, job = self.role, self.job
            name = f"pytest-agentops:{self.seed}" if role == AGENT else f"pytest-agentops:{role}:{self.seed}"
            self._rng = random.Random(f"{name}:job:{'.'.join(map(str, job))}" if job else name)
        return self._rng

    def _sequence(self, *key: int) -> np.random.SeedSequence:
        np = numpy_module()  # (only numpy's stand-ins call this, ``numpy_random``: loaded already)
        role = () if self.role == AGENT else (self.role,)
        job = (_JOB_TAG, *self.job) if self.job else ()
        return np.random.SeedSequence(abs(int(self.seed)), spawn_key=(_NP_TAG, *role, *job, *key))

    def reseed(self, numpy: bool) -> int | str:
        """What ``random.seed()`` (or ``np.random.seed()``) without a seed reseeds the trial's generator with: the
        next of the trial's own reseeds, not fresh OS entropy (a library that reseeds "to be safe" made the
        trial's later draws differ in every run)."""
        n = next(self._counters()[2])
        if numpy:
            return int(self._sequence(2, n).generate_state(1)[0])
        return f"pytest-agentops:{self.role}:{self.seed}:{'.'.join(map(str, self.job))}:reseed:{n}"

    def for_job(self) -> TrialRandom:
        """The generator of the next job this one's trial hands to a thread (numbered in the order they are
        handed over, which the trial's own code decides): jobs running at once each draw from their own, not
        from one shared in the order their threads happen to run."""
        return TrialRandom(self.seed, self.role, (*self.job, next(self._counters()[1])))

    def in_job(self, job: tuple[int, ...]) -> TrialRandom:
        """This stream as drawn from in the thread job ``job`` of its trial (``TrialRandom.job``): the job's own
        (made once), so that jobs running at once draw apart, not from one stream in the order their threads
        run; itself outside any job."""
        if not job:
            return self
        with _COUNTERS_LOCK:
            if self._in_jobs is None:
                self._in_jobs = {}
            found = self._in_jobs.get(job)
            if found is None:
                found = self._in_jobs[job] = TrialRandom(self.seed, self.role, job)
            return found

    @property
    def numpy(self) -> np.random.RandomState:
        """The trial's stand-in for numpy's global ``RandomState``."""
        if self._np is None:
            np = numpy_module()
            self._np = np.random.RandomState(np.random.MT19937(self._sequence(0)))
        return self._np

    def default_rng(self) -> np.random.Generator:
        """``np.random.default_rng()`` with no seed: the next of the trial's own generators."""
        np = numpy_module()
        return np.random.Generator(np.random.PCG64(self._sequence(1, next(self._counters()[0]))))


_active: contextvars.ContextVar[TrialRandom | None] = contextvars.ContextVar("pytest_agentops_random", default=None)
#: the context variable ``enter_random`` sets (for a caller that sets and resets it itself, on a hot path)
ACTIVE_RANDOM = _active


def enter_random(trial_random: TrialRandom) -> contextvars.Token[TrialRandom | None]:
    """Make the current context's ``random`` functions draw from ``trial_random`` (undo with ``exit_random``)."""
    return _active.set(trial_random)


def exit_random(token: contextvars.Token[TrialRandom | None]) -> None:
    """Undo ``enter_random``."""
    _active.reset(token)


def drawing_from(trial_random: TrialRandom, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with ``random``'s (and numpy's) global functions drawing from ``trial_random``."""
    token = _active.set(trial_random)
    try:
        return fn(*args)
    finally:
        _active.reset(token)


def drawn_from(trial_random: TrialRandom, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` made to draw from ``trial_random`` whenever it is called (``drawing_from``); called in a thread job of
    the trial, from the job's own (``TrialRandom.in_job``)."""

    def call(*args: Any) -> Any:
        active = _active.get()
        return drawing_from(trial_random.in_job(active.job) if active is not None else trial_random, fn, *args)

    return call


def random_for_job() -> contextvars.Token[TrialRandom | None] | None:
    """In the context a thread job of a trial will run in (a copy of the trial's): the job's own generator
    (``TrialRandom.for_job``); the token to undo it, or None outside a trial."""
    current = _active.get()
    return None if current is None else _active.set(current.for_job())


THREAD_JOB_SETUP.append(random_for_job)


def _stand_in(module: Any, name: str, process_wide: Any, of_trial: str, method: str | None = None
              ) -> Callable[..., Any]:
    """``module.name`` as a function calling ``method`` (default ``name``) of the active trial's generator
    (its attribute ``of_trial``), or of ``process_wide`` outside a trial."""
    real = getattr(module, name)
    method = method or name
    seed_name = "a" if of_trial == "rng" else "seed"  # (``random.seed(a=None)``, ``np.random.seed(seed=None)``)

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        current = _active.get()
        if current is None:
            return getattr(process_wide, method)(*args, **kwargs)
        if method == "seed" and (args[0] if args else kwargs.get(seed_name)) is None:  # (no seed: the trial's)
            kwargs.pop(seed_name, None)
            args = (current.reseed(of_trial == "numpy"), *args[1:])
        return getattr(getattr(current, of_trial), method)(*args, **kwargs)

    stand_in.__name__ = stand_in.__qualname__ = name
    stand_in.__module__ = module.__name__
    stand_in.__doc__ = real.__doc__
    return stand_in


#: The module-level functions that are methods of the process-wide generator (``random``, ``choice``, ...).
NAMES: tuple[str, ...] = tuple(name for name in random.__all__
                               if getattr(getattr(random, name, None), "__self__", None) is _GLOBAL)

register_stand_ins(random, {name: _stand_in(random, name, _GLOBAL, "rng") for name in NAMES})

