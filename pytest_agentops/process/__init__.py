"""Everything a campaign changes in the interpreter, in one place: one ``ProcessPatch`` mechanism and the
inventory of every patch (time and datetime stand-ins, stdlib ``random`` stand-ins, collector settings,
anyio's worker threads, the HTTP interception of the model boundary). Each is made when its first holder
enters and undone when its last holder leaves; ``patch.installed()`` says what is in place right now."""

import gc as _gc

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

#: The most objects an interpreter freezes (``gc.freeze``) on its own before any code runs: CPython 3.12.1
#: starts with 375. More than this frozen when the package is imported is a freeze of the process's own (a
#: pre-fork server's ``gc.freeze()`` holds tens of thousands), which a campaign must leave alone.
INTERPRETER_FROZEN_MAX = 1000

#: Objects the interpreter itself froze, counted when ``pytest_agentops`` is imported (as pytest loads the
#: plugin, before any conftest runs): a campaign's collector hold (``gc_hold``) does not take them for a freeze
#: of the process's. 0 when more were frozen then (the process froze them: left alone).
FROZEN_AT_START = _gc.get_freeze_count()
if FROZEN_AT_START > INTERPRETER_FROZEN_MAX:
    FROZEN_AT_START = 0
