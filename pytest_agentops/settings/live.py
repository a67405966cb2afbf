"""Settings of the live model boundary: ``LiveLLM``, a real OpenAI- or Anthropic-compatible endpoint a
campaign's trials talk to through the harness (faults, drift, perturbations, metering, cassettes). Values
only; the runtime is ``pytest_agentops.llm.live``.

The key never appears here: ``key_env`` names the environment variable that holds it, read when a campaign
forwards its first request (a replay from a cassette needs no key at all).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .._validation import check_positive_seconds, check_whole, reject_unknown_keys
from ..errors import ConfigError, hide_own_frames
from ._meta import setting

__tracebackhide__ = hide_own_frames

#: An upstream base URL: http(s), a host, an optional path (``https://api.openai.com/v1``).
URL_PATTERN = r"^https?://[A-Za-z0-9._~%\[\]-]+(:[0-9]{1,5})?(/[^\s?#]*)?$"
#: The name of an environment variable.
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


@dataclass(frozen=True, slots=True)
class LiveLLM:
    """A real model endpoint behind ``env.llm``: each request of a trial is forwarded to ``base_url``.

    The agent talks to the trial's own host (``env.llm.base_url``) as with the fake model; the boundary
    applies the trial's drift to the request, answers an injected model-API fault instead of forwarding, or
    forwards it (the agent's fake key replaced by the value of the environment variable ``key_env``), meters
    the upstream's real ``usage`` and perturbs the reply on its way back. ``base_url`` is where the API's
    paths start: ``https://api.openai.com/v1``, ``https://api.anthropic.com/v1``,
    ``http://localhost:11434/v1`` (Ollama), a LiteLLM or vLLM server's ``/v1``; the request's path after its
    own ``/v1`` is appended to it.

    ``requests_per_minute`` and ``tokens_per_minute`` are ceilings the campaign keeps to across all its
    trials; an upstream 429 pauses every trial's forwarding for its ``retry-after`` and is retried by the
    boundary (``throttle_retries`` times) without the agent seeing it: those waits are not injected faults.
    """

    base_url: str = setting(doc="the upstream's base URL, e.g. https://api.openai.com/v1", kind="text",
                            required=True, schema={"pattern": URL_PATTERN})
    key_env: str = setting(doc="the name of the environment variable that holds the upstream's API key (the key "
                               "itself is never a setting)", kind="text", required=True,
                           schema={"pattern": ENV_PATTERN})
    model: str = setting("", doc="the model name env.llm.model tells the agent to use (empty: the agent's own "
                                 "choice)", kind="text", schema={"minLength": 0})
    requests_per_minute: int | None = setting(None, doc="at most this many requests a minute to the upstream, "
                                                        "over all trials (null: no ceiling)", kind="whole",
                                              minimum=1, nullable=True)
    tokens_per_minute: int | None = setting(None, doc="at most this many tokens a minute (estimated before, "
                                                      "counted after each request; null: no ceiling)",
                                            kind="whole", minimum=1, nullable=True)
    timeout_s: float = setting(120.0, doc="real seconds to wait for the upstream's answer", kind="positive_seconds")
    throttle_retries: int = setting(4, doc="upstream 429s the boundary waits out and retries before the agent sees "
                                           "one", kind="whole", minimum=0)
    #: what a scenario file's reader fills in to check one key alone (the required keys are checked apart)
    YAML_PROBE: ClassVar[Mapping[str, Any]] = {"base_url": "http://probe.invalid/v1", "key_env": "PROBE"}

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not re.fullmatch(URL_PATTERN, self.base_url):
            raise ConfigError(f"live.base_url={self.base_url!r} must be an http(s) URL such as "
                              "'https://api.openai.com/v1'")
        if not isinstance(self.key_env, str) or not re.fullmatch(ENV_PATTERN, self.key_env):
            raise ConfigError(f"live.key_env={self.key_env!r} must be the NAME of an environment variable (such as "
                              "'OPENAI_API_KEY'), never the key itself")
        if not isinstance(self.model, str):
            raise ConfigError(f"live.model={self.model!r} must be a model name (a string)")
        check_whole("live.requests_per_minute", self.requests_per_minute, 1, optional=True)
        check_whole("live.tokens_per_minute", self.tokens_per_minute, 1, optional=True)
        object.__setattr__(self, "timeout_s", check_positive_seconds("live.timeout_s", self.timeout_s))
        check_whole("live.throttle_retries", self.throttle_retries, 0)
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @classmethod
    def coerce(cls, value: Any, where: str = "live") -> LiveLLM:
        """A ``LiveLLM`` from itself or a mapping of its settings."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}={value!r} must be a LiveLLM(base_url=..., key_env=...) or a mapping of "
                              "its settings")
        reject_unknown_keys(value, [f.name for f in fields(cls)], where)
        return cls(**dict(value))

    @property
    def host(self) -> str:
        """The upstream's host name: declared to the network guard by the live boundary itself."""
        return (urlsplit(self.base_url).hostname or "").lower()

    def __repr__(self) -> str:
        return f"LiveLLM({self.base_url!r}, key_env={self.key_env!r}, model={self.model!r})"


#: What a campaign does with cassettes: record the upstream's answers, or replay them instead of the upstream.
CASSETTE_MODES = ("record", "replay")


@dataclass(frozen=True, slots=True)
class CassetteSpec:
    """``--agent-chaos-record=DIR`` (``mode="record"``) or ``--agent-chaos-cassette=DIR`` (``"replay"``): the
    directory holding one JSON Lines file per scenario."""

    mode: str
    directory: str

    def __post_init__(self) -> None:
        if self.mode not in CASSETTE_MODES:
            raise ConfigError(f"cassette mode={self.mode!r} must be one of {', '.join(CASSETTE_MODES)}")
        if not isinstance(self.directory, str) or not self.directory:
            raise ConfigError(f"cassette directory={self.directory!r} must be a path")
