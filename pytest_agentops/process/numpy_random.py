"""numpy's legacy global random functions inside a trial: drawing from the trial's own ``RandomState``
(``trial_random.TrialRandom.numpy``), as ``random``'s do from its own generator (see ``trial_random``).

Imported with the engine in pytest's process (registered before any campaign installs the stand-ins); in an
isolated agent's process, which does not load numpy itself, when the agent first imports ``numpy.random``
(``after_import``), and then put over numpy's functions at once if that is inside its trial.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import hide_own_frames
from .time_patch import register_stand_ins
from .trial_random import _active, _stand_in

if TYPE_CHECKING:
    import numpy as np

__tracebackhide__ = hide_own_frames

# (from the import system, not as ``numpy``'s attribute: imported by ``after_import`` from inside numpy.random's
# own import, before numpy has that attribute; reading it then would import numpy.random again)
_random: Any = importlib.import_module("numpy.random")
_NP_GLOBAL = _random.mtrand._rand  # the RandomState behind numpy's legacy module-level functions


_real_default_rng = _random.default_rng


def _default_rng(seed: Any = None) -> np.random.Generator:
    current = _active.get()
    if seed is None and current is not None:
        return current.default_rng()
    return _real_default_rng(seed)


_default_rng.__name__ = _default_rng.__qualname__ = "default_rng"
_default_rng.__module__ = "numpy.random"
_default_rng.__doc__ = _real_default_rng.__doc__

#: numpy's legacy module-level functions: name -> the global ``RandomState`` method each one calls
NUMPY_NAMES: dict[str, str] = {
    **{name: name for name in _random.__all__ if getattr(getattr(_random, name, None), "__self__", None)
       is _NP_GLOBAL},
    **{name: method for name, method in (("seed", "seed"), ("ranf", "random_sample"), ("sample", "random_sample"))
       if hasattr(_random, name)},
}

register_stand_ins(_random, {**{name: _stand_in(_random, name, _NP_GLOBAL, "numpy", method)
                                  for name, method in NUMPY_NAMES.items()},
                               "default_rng": _default_rng})


def _global_state() -> np.random.RandomState:
    """numpy's global ``RandomState`` as the caller should see it: the active trial's, else the real one."""
    current = _active.get()
    return _NP_GLOBAL if current is None else current.numpy


class _GlobalRandomState(_random.RandomState):  # type: ignore[misc,name-defined]
    """``np.random.mtrand._rand`` while campaigns run: the ``RandomState`` that libraries asking for numpy's
    global one get (scipy's ``check_random_state(None)``: ``scipy.stats.expon.rvs()`` drew from it, unseeded
    by the trial), each attribute that of the active trial's (its ``numpy``) inside a trial, of the real one
    elsewhere. (C code reaching into the state of the ``RandomState`` it is handed, not through its methods,
    reaches this object's own generator, seeded with 0.)"""

    def __getattribute__(self, name: str) -> Any:
        return getattr(_global_state(), name)

    def __repr__(self) -> str:
        return repr(_global_state())


register_stand_ins(_random.mtrand, {"_rand": _GlobalRandomState(0)})  # type: ignore[dict-item]


_real_set_bit_generator = getattr(_random, "set_bit_generator", None)


def _set_bit_generator(bitgen: Any) -> None:
    """``np.random.set_bit_generator``: the trial's global ``RandomState`` (inside a trial) or the real one takes
    ``bitgen`` (the real function writes into ``mtrand._rand``: while campaigns run, the stand-in above). What
    is not a bit generator goes to the real function, which refuses it (``RandomState(None)`` would reseed from
    the OS)."""
    if not isinstance(bitgen, _random.BitGenerator):
        _real_set_bit_generator(bitgen)  # type: ignore[misc]  (raises, as numpy does)
        return
    _global_state().__init__(bitgen)  # type: ignore[misc]


def _get_bit_generator() -> Any:
    """``np.random.get_bit_generator``: of the trial's global ``RandomState`` inside a trial, else the real one's."""
    return _global_state()._bit_generator


_bit_generator_stand_ins = {name: fake for name, fake in (("set_bit_generator", _set_bit_generator),
                                                          ("get_bit_generator", _get_bit_generator))
                            if hasattr(_random, name)}
for _name, _fake in _bit_generator_stand_ins.items():
    _fake.__name__ = _fake.__qualname__ = _name
    _fake.__module__ = "numpy.random"
register_stand_ins(_random, _bit_generator_stand_ins)
