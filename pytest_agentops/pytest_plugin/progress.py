"""Live progress on the terminal while a campaign runs: the engine's ``Progress`` values rendered through
pytest's terminal reporter.

Two ways, chosen once per campaign (``progress_mode``):

* ``redraw`` (the output is a TTY): one line redrawn in place after whatever pytest has written on the
  current line (the cursor goes back to that column, the rest of the line is rewritten and cleared), and
  cleared when the campaign ends, so pytest's own output is left exactly as it would be without it;
* ``lines`` (not a TTY: CI logs): one complete line every ``--agent-chaos-progress-every`` seconds (5 by
  default; nothing for a campaign that ends sooner), after which pytest's current line is written again so
  that its own layout (the ``[ 50%]`` column) stays right.

Silent with ``--agent-chaos-progress=off``, at ``-qq`` (unless ``on``), and always on pytest-xdist workers
(their output would corrupt the controller's). Everything is written with the terminal reporter's
``write_raw`` (pytest's record of its current line is left alone) while output capturing is suspended for
the write, as pytest's live logging does.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import pytest

from ..engine.progress import Progress, RunningEstimate
from ..errors import hide_own_frames
from ..harness.secrets import redact_text
from .options import ChaosOptions

__tracebackhide__ = hide_own_frames

#: seconds between redraws on a TTY (and before the first: a campaign that ends sooner draws nothing)
REDRAW_S = 0.5
PREFIX = "agentops: "
#: the fewest columns a redrawn line needs on the current line; with fewer it is not drawn
MIN_ROOM = 24


def progress_mode(config: pytest.Config, options: ChaosOptions) -> str | None:
    """``"redraw"``, ``"lines"``, or None (no progress) for the campaigns of this session."""
    if options.progress == "off" or hasattr(config, "workerinput"):
        return None
    if options.progress == "auto" and config.get_verbosity() < -1:
        return None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    # with capture off (-s) what the agent prints moves the cursor behind the writer's back: no redraw then
    if reporter.isatty() and os.environ.get("TERM") != "dumb" and config.getoption("capture", "fd") != "no":
        return "redraw"
    return "lines"


@contextlib.contextmanager
def campaign_progress(config: pytest.Config, options: ChaosOptions) -> Iterator[dict[str, Any]]:
    """The keyword arguments that give ``engine.campaign.run_resolved`` this session's progress display
    (empty: none); a redrawn line is cleared when the block ends, however it ends."""
    mode = progress_mode(config, options)
    if mode is None:
        yield {}
        return
    display = TerminalProgress(config, mode)
    every = REDRAW_S if mode == "redraw" else options.progress_every_s
    try:
        yield {"progress": display, "progress_every_s": every}
    finally:
        display.close()


class TerminalProgress:
    """Renders ``Progress`` values on pytest's terminal (a callable: the engine's progress callback)."""

    def __init__(self, config: pytest.Config, mode: str):
        self.mode = mode
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.writer = config.get_terminal_writer()
        self.capture = config.pluginmanager.get_plugin("capturemanager")
        self.column: int | None = None  # redraw: the column the drawn line starts at (None: nothing drawn)
        self.broken = False  # a write failed (a closed pipe): draw nothing more

    def __call__(self, progress: Progress) -> None:
        text = PREFIX + progress_text(progress)
        if self.mode == "redraw":
            column = self.writer.width_of_current_line
            room = self.writer.fullwidth - column - 1
            if room < MIN_ROOM:
                return
            self._write(_to_column(column) + _cut(text, room) + "\x1b[K")
            self.column = column
        else:
            self._write(("\n" if self.writer.width_of_current_line else "") + text + "\n" + self._current_line())

    def close(self) -> None:
        """Clear a redrawn line: the cursor back where pytest left it, the rest of the line erased."""
        if self.column is not None:
            self._write(_to_column(self.column) + "\x1b[K")
            self.column = None

    def _current_line(self) -> str:
        """What pytest has written on its current line, to write again under a progress line. The terminal
        writer keeps it in ``_current_line`` (no public accessor; its width is public): read defensively, and
        blanks of that width if a later pytest renames it."""
        current = getattr(self.writer, "_current_line", None)
        return current if isinstance(current, str) else " " * self.writer.width_of_current_line

    def _write(self, text: str) -> None:
        if self.broken:
            return
        disabled = getattr(self.capture, "global_and_fixture_disabled", None)
        try:
            with disabled() if disabled is not None else contextlib.nullcontext():
                self.reporter.write_raw(text, flush=True)
        except (OSError, ValueError):  # the terminal went away (closed pipe, closed file): the campaign goes on
            self.broken = True


def _to_column(column: int) -> str:
    """Carriage return, then the cursor ``column`` places right (over pytest's text, not erasing it)."""
    return "\r" + (f"\x1b[{column}C" if column else "")


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[:room - 3] + "..."


def progress_text(progress: Progress) -> str:
    """One line, the time first (a line cut to the terminal's width keeps it): ``refund: 120/2,000 trials,
    12s elapsed, ~3m08s left at most | completion_rate 0.93 (lo 0.88) >= 0.9``."""
    left = "" if progress.eta_s is None else f", ~{duration_text(progress.eta_s)} left at most"
    head = (f"{redact_text(progress.scenario)}: {progress.done:,}/{progress.max_trials:,} trials, "
            f"{duration_text(progress.elapsed_s)} elapsed{left}")
    return " | ".join([head, *(_estimate_text(e) for e in progress.estimates)])


def _estimate_text(e: RunningEstimate) -> str:
    if e.estimate is None:
        shown = "-"
    elif e.statistic == "count":
        shown = f"{e.estimate:g}"
    else:
        shown = _number(e.estimate)
    if e.bound is not None:
        shown += f" ({'lo' if e.bound_side == 'lower' else 'up'} {_number(e.bound)})"
    state = f" {e.state}" if e.state else ""
    return f"{e.key} {shown} {e.expression}{state}"


def _number(value: float) -> str:
    """Three significant digits, but a number of a thousand or more as a whole number (``1898``, not ``1.9e+03``
    beside a threshold of ``4000``: 3,998 read as ``4e+03``)."""
    return f"{value:.0f}" if math.isfinite(value) and abs(value) >= 1000 else f"{value:.3g}"


def duration_text(seconds: float) -> str:
    """``0.4s``, ``8.0s``, ``42s``, ``1m20s``, ``2h03m``."""
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
