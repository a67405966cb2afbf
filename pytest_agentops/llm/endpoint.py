"""``LLMEndpoint``: the trial's fake model as the agent sees it (``env.llm``), and SDK clients for it."""

from __future__ import annotations

import importlib
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames


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
        """The trial's own host name (``llm-<its seed in hex>.agentops.test``)."""
        return urlsplit(self.base_url).hostname or ""

    def _client(self, sdk: str, cls: str, **kwargs: Any) -> Any:
        module = importlib.import_module(sdk)
        base = self.root_url if sdk == "anthropic" else self.base_url
        settings = {"base_url": base, "api_key": self.api_key, "max_retries": 2, "timeout": 30.0, **kwargs}
        if "http_client" not in settings:  # the SDK's own kind of HTTP client, without a TLS set-up per trial
            http = module.DefaultAsyncHttpxClient if cls.startswith("Async") else module.DefaultHttpxClient
            settings["http_client"] = http(verify=shared_ssl_context())
        return getattr(module, cls)(**settings)

    def openai(self, **kwargs: Any) -> Any:
        """An ``openai.OpenAI`` client for this endpoint (``max_retries=2``, ``timeout=30`` unless given)."""
        return self._client("openai", "OpenAI", **kwargs)

    def async_openai(self, **kwargs: Any) -> Any:
        """An ``openai.AsyncOpenAI`` client for this endpoint."""
        return self._client("openai", "AsyncOpenAI", **kwargs)

    def anthropic(self, **kwargs: Any) -> Any:
        """An ``anthropic.Anthropic`` client for this endpoint."""
        return self._client("anthropic", "Anthropic", **kwargs)

    def async_anthropic(self, **kwargs: Any) -> Any:
        """An ``anthropic.AsyncAnthropic`` client for this endpoint."""
        return self._client("anthropic", "AsyncAnthropic", **kwargs)


_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for the clients ``LLMEndpoint`` makes: a client making its own loads the CA bundle,
    20-80 ms of CPU per trial, though the fake model's host is plain http (each trial still gets a client of
    its own, which it may close)."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context()
        return _ssl_context
