"""The built-in ``secrets`` layer: for the length of a campaign, the environment's secrets read and what the
agent prints or logs redacted (``secrets.redacted_output``). Apart from ``secrets`` (what is redacted), which
the trace imports, so that the layer seam and the redaction do not import each other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import hide_own_frames
from .secrets import redacted_output, refresh

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from ..scenario import Scenario
    from ..settings.run import RunSettings
    from .layer import LayerTrial, TrialPort


class _Redaction:
    """The secrets layer for one campaign: the environment read, the output redacted until it closes."""

    __slots__ = ("_held",)
    name = "secrets"

    def __init__(self) -> None:
        refresh()
        redacted_output.acquire()
        self._held = True

    def attach(self, trial: TrialPort) -> LayerTrial | None:
        return None  # nothing per trial: trace events, reasons and outputs are redacted where they are written

    def close(self) -> None:
        if self._held:
            self._held = False
            refresh()  # (a secret the campaign's trials put in the environment, before it is put back: kept)
            redacted_output.release()


class SecretsLayer:
    """Always on: secrets in what an agent prints, logs, raises, returns or passes to tools are redacted."""

    name = "secrets"

    def for_campaign(self, scenario: Scenario, run: RunSettings) -> _Redaction:
        return _Redaction()


LAYER = SecretsLayer()
