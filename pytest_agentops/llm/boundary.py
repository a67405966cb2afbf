"""``FakeLLM`` (what a scenario asks for) and ``Boundary`` (what one trial gets): the trial's fake model
and transport faults, opened when the trial starts and closed when it ends, however it ends."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError, check_seconds, reject_unknown_keys

if TYPE_CHECKING:
    from ..harness.context import TrialContext
    from .endpoint import TrialModel
    from .intercept import HttpTrial


@dataclass(frozen=True, slots=True)
class FakeLLM:
    """The fake model a scenario's agent talks to over HTTP (``env.llm``).

    ``policy`` decides the replies (see ``pytest_agentops.llm.policy``); ``model`` is the model name the
    endpoint reports and the meter prices; ``latency_s`` the virtual seconds each model call takes.
    Model-API faults and drift come from the run's ``Faults`` (``Faults(model=..., drift=...)``).
    """

    policy: Callable[..., Any]
    model: str = "fake-model"
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if not callable(self.policy):
            raise ConfigError(f"llm.policy={self.policy!r} must be a policy: a function (messages, tools) -> "
                              "message, @rule function, scripted(...) or call_tools_then_answer(...)")
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"llm.model={self.model!r} must be a non-empty model name")
        check_seconds("llm.latency_s", self.latency_s)

    @classmethod
    def coerce(cls, value: Any, where: str = "llm") -> FakeLLM:
        """A ``FakeLLM`` from itself, a bare policy, or a mapping of its settings."""
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            reject_unknown_keys(value, [f.name for f in fields(cls)], where)
            if "policy" not in value:
                raise ConfigError(f"{where} needs a policy (e.g. pytest_agentops.demo.policy:policy)")
            return cls(**dict(value))
        if callable(value):
            return cls(value)
        raise ConfigError(f"{where}={value!r} must be a FakeLLM(policy, model=...) or a policy function")


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


class Boundary:
    """One trial's model boundary: its fake model (``endpoint``) and its transport faults."""

    def __init__(self, ctx: TrialContext, model: TrialModel | None, http: HttpTrial | None):
        self.ctx = ctx
        self.model = model
        self.http = http
        self.closed = False

    @property
    def endpoint(self) -> LLMEndpoint | None:
        """What the agent gets as ``env.llm``."""
        return self.model.endpoint if self.model is not None else None

    def close(self) -> None:
        """Remove the trial's routes (idempotent) and put its ``context_utilization`` into ``ctx.extra``."""
        if self.closed:
            return
        self.closed = True
        from .intercept import HUB

        HUB.detach(self.model, self.http)
        if self.model is not None:
            value = self.model.utilization()
            if value is not None:
                self.ctx.extra["context_utilization"] = round(value, 6)
            self.ctx.extra["model_attempts"] = self.model.requests


def open_boundary(llm: Any, ctx: TrialContext) -> Boundary | None:
    """The trial's boundary, or None when the scenario has no fake model and the faults name no HTTP host."""
    faults = ctx.plan.faults
    http_settings = getattr(faults, "http", None)
    http_active = http_settings is not None and http_settings.active
    if llm is None and not http_active:
        return None
    from .endpoint import TrialModel
    from .intercept import HUB, HttpTrial

    model = None
    if llm is not None:
        spec = FakeLLM.coerce(llm)
        model = TrialModel(spec.policy, ctx, model=spec.model, latency_s=spec.latency_s, host=HUB.new_host(),
                           faults=getattr(faults, "model", None), drift=getattr(faults, "drift", None))
    http = HttpTrial(ctx, http_settings) if http_active else None
    HUB.attach(model, http)
    return Boundary(ctx, model, http)



@contextlib.contextmanager
def campaign_hold(llm: Any, faults: Any) -> Iterator[None]:
    """Keep the HTTP interception installed over a whole campaign that needs it (installing it for each
    trial costs a few milliseconds); trials still open and close their own routes."""
    http = getattr(faults, "http", None)
    if llm is None and not (http is not None and http.active):
        yield
        return
    from .intercept import HUB

    HUB.attach(None, None)
    try:
        yield
    finally:
        HUB.detach(None, None)
