"""The commands the plugin prints for a user to paste back (a trial's replay, a smoke trial's): how they start
(as this pytest was started), how a test's node id is written in them (from where pytest was started) and how
a piece of one is quoted. Imports nothing of the engine: the options resolve the launcher in every session."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames


def literal(text: str) -> str:
    """``text`` shell-quoted for a printed command template, its braces kept literal through ``str.format``."""
    return shlex.quote(text).replace("{", "{{").replace("}", "}}")


def shown_node(path: Path, nodeid: str, invocation_dir: Path) -> str:
    """``nodeid`` (rootdir-relative) with its file part as ``path`` relative to where pytest was started (what a
    pasted command needs), absolute when the file is outside that directory."""
    file_part, sep, rest = nodeid.partition("::")
    if not file_part:
        return nodeid
    try:
        shown = os.path.relpath(path, invocation_dir)
    except ValueError:  # another drive (Windows)
        shown = str(path)
    if shown.startswith(".." + os.sep) and not file_part.startswith(".."):
        shown = str(path)
    return shown + sep + rest


def launcher(argv0: str | None = None, executable: str | None = None) -> str:
    """How this pytest was started, as a printed command must start to run the same way: ``python -m pytest``
    (which puts the working directory on ``sys.path``: a project importing its own modules from there fails
    under a bare ``pytest``), with the interpreter's name when that is what ``PATH`` finds for it
    (``python3 -m pytest``), else its full path; otherwise ``pytest``."""
    path = os.path.normpath(sys.argv[0] if argv0 is None else argv0)
    if os.path.basename(path) != "__main__.py" or os.path.basename(os.path.dirname(path)) != "pytest":
        return "pytest"
    executable = executable or sys.executable
    name = os.path.basename(executable)
    found = shutil.which(name)  # (paths compared as they are: a venv's python is a link to another interpreter)
    same = found is not None and os.path.abspath(found) == os.path.abspath(executable)
    return f"{name if same else shlex.quote(executable)} -m pytest"
