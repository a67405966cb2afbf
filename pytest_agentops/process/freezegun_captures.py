"""freezegun's captures of the real clock, kept real where freezegun is first imported while the time stand-ins
are in.

freezegun takes ``time.time``, ``datetime.datetime`` and the rest as the real ones when its ``api`` module is
first imported. Imported inside a trial (an agent's lazy ``import freezegun``), it took the stand-ins: its
``freeze_time`` then fell back on the trial's clock where it means real time (a ``real_asyncio`` loop's waits, a
``tick``, ``multiprocessing``'s) and hung the trial, and put the stand-ins back into ``time`` and ``datetime`` at
every exit, for the rest of the session. pytest's process imports this module, and so freezegun, with the engine,
before any stand-in is in; an isolated agent's process, which loads no freezegun unless its agent does (~50 ms of
its start-up), imports it right after freezegun's ``api`` module (``after_import``), before the agent's
``import`` returns, and it puts the real functions back into freezegun wherever freezegun holds a stand-in.
"""

from __future__ import annotations

import sys
from types import ModuleType

from ..errors import hide_own_frames
from .time_stand_ins import real_of

__tracebackhide__ = hide_own_frames

#: freezegun's module that takes the captures
API = "freezegun.api"


def make_real(api: ModuleType) -> int:
    """Put back the real function or class wherever ``api`` (freezegun's module) holds a stand-in, as a name or in
    a list of its own (``real_date_objects``), and work out again the ids it looks them up by; returns how many."""
    changed = 0
    for name, value in list(vars(api).items()):
        if type(value) is list:
            for i, item in enumerate(value):
                real = real_of(item)
                if real is not item:
                    value[i] = real
                    changed += 1
            continue
        real = real_of(value)
        if real is not value:
            setattr(api, name, real)
            changed += 1
    objects = getattr(api, "real_date_objects", None)
    if changed and type(objects) is list and isinstance(getattr(api, "_real_time_object_ids", None), set):
        api._real_time_object_ids = {id(obj) for obj in objects}  # type: ignore[attr-defined]
    return changed


try:
    import freezegun.api  # noqa: F401 (pytest's process: loaded before any stand-in is in)
except ImportError:  # (a dependency, but a process without it has nothing to keep real)
    pass
else:
    make_real(sys.modules[API])
