"""Everything a campaign changes in the interpreter, in one place: one ``ProcessPatch`` mechanism and the
inventory of every patch (time and datetime stand-ins, stdlib ``random`` stand-ins, collector settings,
anyio's worker threads, the HTTP interception of the model boundary). Each is made when its first holder
enters and undone when its last holder leaves; ``patch.installed()`` says what is in place right now."""

import gc as _gc

#: Objects frozen (``gc.freeze``) when the package was imported: the interpreter's own (CPython 3.12.1 starts
#: with 375), which a campaign's collector hold (``gc_hold``) does not take for a freeze of the process's.
#: Taken here, when ``pytest_agentops`` is imported (as pytest loads the plugin), before any conftest runs.
FROZEN_AT_START = _gc.get_freeze_count()
