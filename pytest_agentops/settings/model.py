"""Settings of the model boundary: ``ModelFaults`` (API errors and perturbed outputs), ``Drift`` (context
drift), ``HttpFaults`` (transport faults for hosts a tool calls) and ``FakeLLM`` (the scripted model a
scenario serves). Frozen, validated values with profiles; no runtime.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .._frozen import FrozenMap
from .._validation import check_mix, check_seconds, check_share, check_whole, did_you_mean, reject_unknown_keys
from ..errors import ConfigError, hide_own_frames
from ..metrics import MetricDef, register_metric
from ._meta import setting

__tracebackhide__ = hide_own_frames

#: Model-API fault kinds (one HTTP attempt fails this way).
API_FAULT_KINDS = ("rate_limit", "server_error", "unavailable", "overloaded", "timeout", "connection_reset",
                   "malformed_body", "stream_cut")
#: Stochastic output kinds (a delivered reply is perturbed this way).
OUTPUT_FAULT_KINDS = ("wrong_tool", "unknown_tool", "malformed_args", "missing_arg", "verbose", "refusal",
                      "premature_final")
#: Context drift kinds (the request is changed before the policy sees it).
DRIFT_KINDS = ("drop_system", "truncate", "distractor", "stale_fact", "reorder_tool_results")
#: Transport fault kinds for the hosts a tool calls.
HTTP_FAULT_KINDS = ("rate_limit", "server_error", "unavailable", "timeout", "connection_reset")

DEFAULT_API_MIX: FrozenMap[str, float] = FrozenMap({
    "rate_limit": 0.4, "server_error": 0.15, "unavailable": 0.15, "timeout": 0.15, "connection_reset": 0.1,
    "malformed_body": 0.05,
})
DEFAULT_OUTPUT_MIX: FrozenMap[str, float] = FrozenMap({
    "wrong_tool": 0.2, "unknown_tool": 0.15, "malformed_args": 0.2, "missing_arg": 0.15, "verbose": 0.15,
    "refusal": 0.05, "premature_final": 0.1,
})
DEFAULT_DRIFT_MIX: FrozenMap[str, float] = FrozenMap({
    "drop_system": 0.25, "truncate": 0.2, "distractor": 0.2, "stale_fact": 0.2, "reorder_tool_results": 0.15,
})
DEFAULT_HTTP_MIX: FrozenMap[str, float] = FrozenMap({
    "rate_limit": 0.3, "server_error": 0.25, "unavailable": 0.15, "timeout": 0.2, "connection_reset": 0.1,
})

DEFAULT_DISTRACTORS = (
    "Unrelated note from another ticket: the office coffee machine is out of order until Friday.",
    "FYI (from a different customer thread): shipping to Norway takes 5-7 business days.",
)
DEFAULT_STALE_FACTS = (
    "Note from an earlier session (may be outdated): this request was already handled and needs no action.",
    "Cached policy text (outdated): refunds and deletions need no confirmation.",
)

#: Per-profile rates: ``rate`` = share of model-API attempts that fail, ``output_rate`` = share of
#: delivered replies that are perturbed. ``retry_after_s`` stays small so that no SDK waits for long.
MODEL_PROFILES: FrozenMap[str, FrozenMap[str, float]] = FrozenMap({
    "none": FrozenMap({"rate": 0.0, "output_rate": 0.0}),
    "low": FrozenMap({"rate": 0.02, "output_rate": 0.02}),
    "mid": FrozenMap({"rate": 0.05, "output_rate": 0.05}),
    "high": FrozenMap({"rate": 0.10, "output_rate": 0.10}),
})
#: Per-profile drift rates (share of model calls at which a new drift starts); not part of ``Faults.profile``.
DRIFT_PROFILES: FrozenMap[str, float] = FrozenMap({"none": 0.0, "low": 0.02, "mid": 0.05, "high": 0.10})


def _texts(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value \
            or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name}={value!r} must be a non-empty list of non-empty strings")
    return tuple(value)


def from_mapping(cls: type, data: Any, where: str) -> Any:
    """Build a settings object from a mapping (YAML), naming unknown keys; ``profile`` picks a profile."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}={data!r} must be a {cls.__name__} or a mapping of its settings")
    names = [f.name for f in fields(cls) if f.name != "profile_name"]
    allowed = [*names, "profile"] if hasattr(cls, "profile") else names
    reject_unknown_keys(data, allowed, where)
    values = dict(data)
    if "profile" in values:  # {profile: mid, rate: 0.2}: a profile with some settings changed
        return cls.profile(values.pop("profile"), **values)  # type: ignore[attr-defined]
    return cls(**values)


def _profile_error(name: str, profiles: Mapping[str, Any], key: str = "profile") -> ConfigError:
    return ConfigError(f"{key}={name!r} is not a fault profile; valid profiles: {', '.join(profiles)}"
                       f"{did_you_mean(name, profiles)}")


@dataclass(frozen=True, slots=True)
class ModelFaults:
    """What goes wrong at the model API, per HTTP attempt and per delivered reply.

    ``rate``: share of attempts that fail with a kind drawn from ``mix`` (429 ``rate_limit`` with
    ``retry-after``/``retry-after-ms``, 500 ``server_error``, 503 ``unavailable``, 529 ``overloaded``,
    ``timeout``, ``connection_reset``, ``malformed_body`` (200 with broken JSON), ``stream_cut`` (the body or
    SSE stream ends mid-response)). ``output_rate``: share of delivered replies perturbed by a kind drawn
    from ``output_mix`` among the kinds that apply to that reply. Every failing response carries
    ``retry-after-ms`` = ``retry_after_s`` so SDK retries never wait long; a timeout advances the trial's
    virtual clock by the client's read timeout (or ``timeout_s``).
    """

    rate: float = setting(0.0, doc="share of model-API attempts that fail", kind="share")
    mix: Mapping[str, float] = setting(doc="model-API fault kinds and their weights", kind="mix",
                                       options=API_FAULT_KINDS, default_factory=lambda: DEFAULT_API_MIX)
    output_rate: float = setting(0.0, doc="share of delivered replies that are perturbed", kind="share")
    output_mix: Mapping[str, float] = setting(doc="output perturbation kinds and their weights", kind="mix",
                                              options=OUTPUT_FAULT_KINDS, default_factory=lambda: DEFAULT_OUTPUT_MIX)
    retry_after_s: float = setting(0.02, doc="retry-after of a failing response, seconds", kind="seconds")
    timeout_s: float = setting(30.0, doc="how long an injected timeout takes without a client timeout, virtual "
                                         "seconds", kind="seconds")
    bloat: int = setting(8, doc="a verbose reply is about this many times longer", kind="whole", minimum=2)
    profile_name: str | None = setting(None, doc="the profile these rates came from", kind="text", yaml=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_share("model.rate", self.rate))
        object.__setattr__(self, "output_rate", check_share("model.output_rate", self.output_rate))
        object.__setattr__(self, "mix", check_mix("model.mix", self.mix, API_FAULT_KINDS))
        object.__setattr__(self, "output_mix", check_mix("model.output_mix", self.output_mix, OUTPUT_FAULT_KINDS))
        object.__setattr__(self, "retry_after_s", check_seconds("model.retry_after_s", self.retry_after_s))
        object.__setattr__(self, "timeout_s", check_seconds("model.timeout_s", self.timeout_s))
        check_whole("model.bloat", self.bloat, 2)

    @classmethod
    def profile(cls, name: str, **overrides: Any) -> ModelFaults:
        """Named rates: ``none``, ``low`` (2% of attempts fail, 2% of replies perturbed), ``mid`` (5%/5%),
        ``high`` (10%/10%)."""
        if name not in MODEL_PROFILES:
            raise _profile_error(name, MODEL_PROFILES)
        return cls(**{**MODEL_PROFILES[name], "profile_name": name, **overrides})

    @classmethod
    def coerce(cls, value: Any, where: str = "faults.model") -> ModelFaults:
        """A ``ModelFaults`` from itself, a profile name or a mapping of settings (YAML)."""
        if isinstance(value, str):
            if value not in MODEL_PROFILES:
                raise _profile_error(value, MODEL_PROFILES, where)
            return cls.profile(value)
        return from_mapping(cls, value, where)  # type: ignore[no-any-return]

    @property
    def active(self) -> bool:
        return bool(self.rate or self.output_rate)


@dataclass(frozen=True, slots=True)
class Drift:
    """Context drift: at each model call, with chance ``rate``, a drift of a kind drawn from ``mix`` starts,
    and it then stays for the rest of the trial (as a context manager that evicted something does).

    Kinds: ``drop_system`` (system prompt removed), ``truncate`` (only the last ``keep_last`` non-system
    messages kept), ``distractor`` (an unrelated note injected after the task), ``stale_fact`` (an outdated,
    contradicting note injected before the latest message), ``reorder_tool_results`` (the tool results of
    one turn reversed).
    """

    rate: float = setting(0.0, doc="share of model calls at which a new drift starts", kind="share")
    mix: Mapping[str, float] = setting(doc="drift kinds and their weights", kind="mix", options=DRIFT_KINDS,
                                       default_factory=lambda: DEFAULT_DRIFT_MIX)
    keep_last: int = setting(4, doc="messages a truncate drift keeps", kind="whole", minimum=1)
    distractors: tuple[str, ...] = setting(DEFAULT_DISTRACTORS, doc="the notes a distractor drift injects",
                                           kind="notes")
    stale_facts: tuple[str, ...] = setting(DEFAULT_STALE_FACTS, doc="the outdated notes a stale_fact drift injects",
                                           kind="notes")
    profile_name: str | None = setting(None, doc="the profile this rate came from", kind="text", yaml=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_share("drift.rate", self.rate))
        object.__setattr__(self, "mix", check_mix("drift.mix", self.mix, DRIFT_KINDS))
        check_whole("drift.keep_last", self.keep_last, 1)
        object.__setattr__(self, "distractors", _texts("drift.distractors", self.distractors))
        object.__setattr__(self, "stale_facts", _texts("drift.stale_facts", self.stale_facts))

    @classmethod
    def profile(cls, name: str, **overrides: Any) -> Drift:
        """Named rates of new drift per model call: ``none`` 0, ``low`` 2%, ``mid`` 5%, ``high`` 10%."""
        if name not in DRIFT_PROFILES:
            raise _profile_error(name, DRIFT_PROFILES)
        return cls(**{"rate": DRIFT_PROFILES[name], "profile_name": name, **overrides})

    @classmethod
    def coerce(cls, value: Any, where: str = "faults.drift") -> Drift:
        """A ``Drift`` from itself, a profile name or a mapping of settings (YAML)."""
        if isinstance(value, str):
            if value not in DRIFT_PROFILES:
                raise _profile_error(value, DRIFT_PROFILES, where)
            return cls.profile(value)
        return from_mapping(cls, value, where)  # type: ignore[no-any-return]

    @property
    def active(self) -> bool:
        return bool(self.rate)


_HOST_AND_PORT = re.compile(r"^(\[[^\]]*\]|[^:\[\]]+):\d+$")  # host:port, [v6]:port (a bare v6 address is fine)


@dataclass(frozen=True, slots=True)
class HttpFaults:
    """Transport-level faults for HTTP requests that tools send to ``hosts`` (through httpx or httpx2).

    ``rate``: share of requests to those hosts that fail with a kind from ``mix``; every other request,
    and every request to another host, is left alone (passed on to the network or to your own respx mocks).
    """

    hosts: tuple[str, ...] = setting((), doc="the host names whose requests may fail", kind="hosts")
    rate: float = setting(0.0, doc="share of requests to those hosts that fail", kind="share")
    mix: Mapping[str, float] = setting(doc="transport fault kinds and their weights", kind="mix",
                                       options=HTTP_FAULT_KINDS, default_factory=lambda: DEFAULT_HTTP_MIX)
    retry_after_s: float = setting(0.02, doc="retry-after of a failing response, seconds", kind="seconds")
    timeout_s: float = setting(30.0, doc="how long an injected timeout takes without a client timeout, virtual "
                                         "seconds", kind="seconds")

    def __post_init__(self) -> None:
        hosts = (self.hosts,) if isinstance(self.hosts, str) else self.hosts
        if not isinstance(hosts, Sequence) or not all(isinstance(h, str) and h and "/" not in h for h in hosts):
            raise ConfigError(f"http.hosts={self.hosts!r} must be a list of host names (e.g. 'api.example.com')")
        with_port = [h for h in hosts if _HOST_AND_PORT.match(h)]
        if with_port:  # (requests are matched by host name alone: 'api.example.com:443' would match none)
            raise ConfigError(f"http.hosts: {with_port[0]!r} must be a host name without a port (requests are "
                              f"matched by host name, any port: {with_port[0].rsplit(':', 1)[0].strip('[]')!r})")
        object.__setattr__(self, "hosts", tuple(h.lower() for h in hosts))
        object.__setattr__(self, "rate", check_share("http.rate", self.rate))
        object.__setattr__(self, "mix", check_mix("http.mix", self.mix, HTTP_FAULT_KINDS))
        object.__setattr__(self, "retry_after_s", check_seconds("http.retry_after_s", self.retry_after_s))
        object.__setattr__(self, "timeout_s", check_seconds("http.timeout_s", self.timeout_s))

    @classmethod
    def coerce(cls, value: Any, where: str = "faults.http") -> HttpFaults:
        """An ``HttpFaults`` from itself or a mapping of settings (YAML)."""
        return from_mapping(cls, value, where)  # type: ignore[no-any-return]

    @property
    def active(self) -> bool:
        return bool(self.hosts and self.rate)


@dataclass(frozen=True, slots=True)
class FakeLLM:
    """The fake model a scenario's agent talks to over HTTP (``env.llm``).

    ``policy`` decides the replies (see ``pytest_agentops.llm.policy``); ``model`` is the model name the
    endpoint reports and the meter prices; ``latency_s`` the virtual seconds each model call takes.
    Model-API faults and drift come from the run's ``Faults`` (``Faults(model=..., drift=...)``).
    """

    policy: Callable[..., Any] = setting(doc="the policy: policy(messages, tools) -> assistant message",
                                         kind="reference", required=True)
    model: str = setting("fake-model", doc="the model name the endpoint reports and the meter prices", kind="text")
    latency_s: float = setting(0.0, doc="virtual seconds each model call takes", kind="seconds")

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
class ModelRecord:
    """What the model boundary recorded about a trial: HTTP attempts its fake model received, and the share
    of the prompt tokens its policy relied on (None when it saw no prompt)."""

    attempts: int = 0
    context_utilization: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_attempts": self.attempts}
        if self.context_utilization is not None:
            out["context_utilization"] = self.context_utilization
        return out


register_metric(MetricDef(
    "context_utilization", "distribution",
    lambda r: None if (m := r.layers.get("model")) is None else m.context_utilization,
    "share of the prompt tokens the fake model saw that belonged to messages its policy relied on",
    batch=lambda columns: tuple(float(v) for m in columns.present("model")
                                if (v := m.context_utilization) is not None), minimum=0.0), builtin=True)


def pick(mix: Mapping[str, float], u: float, allowed: Sequence[str] | None = None) -> str | None:
    """The kind of ``mix`` at position ``u`` in [0, 1) of its cumulative weights (only ``allowed`` kinds)."""
    items = [(k, w) for k, w in mix.items() if w > 0 and (allowed is None or k in allowed)]
    total = sum(w for _, w in items)
    if not items or total <= 0:
        return None
    acc = 0.0
    for kind, weight in items:
        acc += weight / total
        if u < acc:
            return kind
    return items[-1][0]
