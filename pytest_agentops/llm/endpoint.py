"""``LLMEndpoint``: the trial's fake model as the agent sees it (``env.llm``), and clients for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class LLMEndpoint:
    """The trial's fake model as the agent sees it (``env.llm``): point any SDK at ``base_url``.

    ``base_url`` ends in ``/v1`` (OpenAI clients); ``root_url`` is the same host without it (Anthropic
    clients add ``/v1`` themselves). ``api_key`` is a fake key, never shown in reprs or traces.
    """

    base_url: str
    api_key: str = field(repr=False)
    model: str = "fake-model"

    @property
    def root_url(self) -> str:
        """The base URL without ``/v1``: what the anthropic SDK takes as ``base_url``."""
        return self.base_url[: -len("/v1")]

    @property
    def host(self) -> str:
        """The trial's own host name (``llm-<n>.agentops.test``)."""
        return urlsplit(self.base_url).hostname or ""

    def openai(self, **kwargs: Any) -> Any:
        """An ``openai.OpenAI`` client for this endpoint (``max_retries=2``, ``timeout=30`` unless given)."""
        import openai

        return openai.OpenAI(**{"base_url": self.base_url, "api_key": self.api_key, "max_retries": 2,
                                "timeout": 30.0, **kwargs})

    def async_openai(self, **kwargs: Any) -> Any:
        """An ``openai.AsyncOpenAI`` client for this endpoint."""
        import openai

        return openai.AsyncOpenAI(**{"base_url": self.base_url, "api_key": self.api_key, "max_retries": 2,
                                     "timeout": 30.0, **kwargs})

    def anthropic(self, **kwargs: Any) -> Any:
        """An ``anthropic.Anthropic`` client for this endpoint."""
        import anthropic

        return anthropic.Anthropic(**{"base_url": self.root_url, "api_key": self.api_key, "max_retries": 2,
                                      "timeout": 30.0, **kwargs})

    def async_anthropic(self, **kwargs: Any) -> Any:
        """An ``anthropic.AsyncAnthropic`` client for this endpoint."""
        import anthropic

        return anthropic.AsyncAnthropic(**{"base_url": self.root_url, "api_key": self.api_key, "max_retries": 2,
                                           "timeout": 30.0, **kwargs})
