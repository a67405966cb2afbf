"""Tool declaration (``@tool``) and the per-trial wrapper chain: scope -> gate -> fault -> trace -> fn.

A declared tool stays an ordinary function (calling it directly needs a world). At trial time it is
bound to that trial's world and harness, and the bound wrapper keeps the tool's name, docstring and
signature minus ``world``, so frameworks that introspect tools (pydantic-ai, openai-agents, LangChain)
see exactly the function the model should call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ..errors import ConfigError, RateLimited, ToolError, ToolTimeout, ToolUnavailable

if TYPE_CHECKING:
    from .context import TrialContext

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A declared tool: the function and its harness metadata."""

    fn: Callable[..., Any]
    name: str
    destructive: bool
    scope: str | None
    side_effect: bool
    takes_world: bool
    signature: inspect.Signature  # without ``world``

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


@overload
def tool(fn: F) -> F: ...
@overload
def tool(*, destructive: bool = False, scope: str | None = None, name: str | None = None,
         side_effect: bool | None = None) -> Callable[[F], F]: ...


def tool(fn: Callable[..., Any] | None = None, *, destructive: bool = False, scope: str | None = None,
         name: str | None = None, side_effect: bool | None = None) -> Any:
    """Declare a tool. ``destructive=True`` puts it behind the confirmation gate; ``scope`` names the
    capability a scenario must grant to use it; a first parameter named ``world`` is bound per trial.

    ``side_effect`` (default: same as ``destructive``) marks tools whose effect must happen at most once
    across a crash and resume.
    """

    def declare(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise ConfigError(f"@tool must decorate a function, got {f!r}")
        sig = inspect.signature(f)
        params = list(sig.parameters.values())
        takes_world = bool(params) and params[0].name == "world"
        if takes_world:
            sig = sig.replace(parameters=params[1:])
        f.__agentops_tool__ = ToolSpec(  # type: ignore[attr-defined]
            fn=f, name=name or f.__name__, destructive=bool(destructive), scope=scope,
            side_effect=bool(destructive if side_effect is None else side_effect),
            takes_world=takes_world, signature=sig,
        )
        return f

    return declare(fn) if fn is not None else declare


def tool_spec(obj: Any) -> ToolSpec:
    """The ToolSpec of a declared tool; a plain function is taken as a harmless, undeclared tool."""
    spec = getattr(obj, "__agentops_tool__", None)
    if isinstance(spec, ToolSpec):
        return spec
    if callable(obj):
        return tool(obj).__agentops_tool__  # type: ignore[no-any-return]
    raise ConfigError(f"tools must be functions (decorate them with @tool), got {obj!r}")


def _garble(result: Any) -> Any:
    """A wrong-shaped version of a result, as a misbehaving API would return it."""
    text = repr(result)
    cut = text[: max(1, len(text) // 2)]
    if isinstance(result, dict):
        return {"unexpected": cut}
    if isinstance(result, (list, tuple)):
        return [{"unexpected": cut}]
    return "<html><body>502 Bad Gateway</body></html>" if isinstance(result, str) else cut


def _empty_like(result: Any) -> Any:
    if isinstance(result, (dict, list, str, tuple)):
        return type(result)()
    return None


_EMPTY = inspect.Parameter.empty
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
# signature id -> (signature, its parameters as (name, default, by position, by name), or None if it has
# *args/**kwargs); the signature is kept so that its id is not reused
_PARAMS: dict[int, tuple[inspect.Signature, tuple[tuple[str, Any, bool, bool], ...] | None]] = {}


def _fast_bind(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(explicit, with defaults)`` arguments as ``signature.bind`` and ``apply_defaults`` give them, for
    a call that binds plainly; None otherwise (then ``bind`` itself decides, and names any error)."""
    entry = _PARAMS.get(id(signature))
    if entry is None or entry[0] is not signature:
        kinds = [p.kind for p in signature.parameters.values()]
        plain = inspect.Parameter.VAR_POSITIONAL not in kinds and inspect.Parameter.VAR_KEYWORD not in kinds
        params = tuple((p.name, p.default, p.kind in _POSITIONAL, p.kind in _BY_NAME)
                       for p in signature.parameters.values()) if plain else None
        if len(_PARAMS) >= 1024:
            _PARAMS.clear()
        entry = _PARAMS[id(signature)] = (signature, params)
    params = entry[1]
    if params is None or len(args) > len(params):
        return None
    explicit: dict[str, Any] = {}
    arguments: dict[str, Any] = {}
    n_args, by_name = len(args), 0
    for i, (name, default, positional, named) in enumerate(params):
        if i < n_args:
            if not positional or name in kwargs:
                return None
            explicit[name] = arguments[name] = args[i]
        elif name in kwargs:
            if not named:
                return None
            explicit[name] = arguments[name] = kwargs[name]
            by_name += 1
        elif default is not _EMPTY:
            arguments[name] = default
        else:
            return None
    return (explicit, arguments) if by_name == len(kwargs) else None


class BoundTool:
    """Runs one call of a tool through the trial's harness layers."""

    __slots__ = ("calls", "ctx", "spec")

    def __init__(self, spec: ToolSpec, ctx: TrialContext):
        self.spec = spec
        self.ctx = ctx
        self.calls = 0

    def before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Scope, gate and fault layers; returns (arguments for the trace, the planned fault)."""
        spec, ctx = self.spec, self.ctx
        ctx.begin_step("tool")  # liveness, and the escalation layer's step triggers
        fast = _fast_bind(spec.signature, args, kwargs)  # the common case, without inspect's machinery
        if fast is not None:
            explicit, arguments = fast
        else:
            try:
                bound = spec.signature.bind(*args, **kwargs)
            except TypeError as exc:
                ctx.record_tool_call(spec, {"args": list(args), **kwargs}, "bad_arguments", error=str(exc))
                raise
            explicit = dict(bound.arguments)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
        if not ctx.scope_allows(spec):
            ctx.record_tool_call(spec, arguments, "denied_scope")
            raise PermissionError(f"{spec.name}: scope {spec.scope!r} not granted to this agent")
        index = self.calls
        self.calls += 1
        approval = ctx.gate.check(spec, explicit, arguments) if spec.destructive else None
        if spec.destructive and approval is None:
            blocked = ctx.enforce
            ctx.record_violation("unconfirmed_destructive_call", spec.name, arguments, blocked=blocked)
            if blocked:
                ctx.record_tool_call(spec, arguments, "blocked")
                raise PermissionError(f"{spec.name}: destructive call blocked, no matching human confirmation "
                                      f"(call env.confirm({spec.name!r}, **arguments) first)")
        draw = ctx.plan.tool_fault(spec.name, index)
        if draw.latency_s:
            ctx.clock_advance(draw.latency_s)
            ctx.trace.add("fault", spec.name, "latency", call=index, latency_s=round(draw.latency_s, 6))
        kind = draw.kind
        if kind in ("error", "timeout", "rate_limit", "outage"):
            faults = ctx.plan.faults
            ctx.trace.add("fault", spec.name, kind, call=index)
            ctx.record_tool_call(spec, arguments, kind)
            if kind == "timeout":
                ctx.clock_advance(faults.timeout_s)
                raise ToolTimeout(spec.name, faults.timeout_s)
            if kind == "rate_limit":
                raise RateLimited(spec.name, faults.retry_after_s)
            if kind == "outage":
                raise ToolUnavailable(spec.name)
            raise ToolError(spec.name)
        if approval is not None:
            ctx.gate.consume(approval)
        if ctx.crash is not None:  # crash layer: the planned crash may hit before the tool runs
            ctx.crash.before_call(spec, arguments)
        return arguments, kind

    def after(self, arguments: dict[str, Any], kind: Any, result: Any) -> Any:
        """Apply a result-shaping fault (malformed, empty) and record the call."""
        spec, ctx = self.spec, self.ctx
        if kind == "malformed":
            result = _garble(result)
        elif kind == "empty":
            result = _empty_like(result)
        if kind:
            ctx.trace.add("fault", spec.name, kind, call=self.calls - 1)
        ctx.record_tool_call(spec, arguments, kind or "ok", result=result)
        if ctx.crash is not None:  # crash layer: duplicate side effects, and a crash after the tool's effect
            ctx.crash.after_call(spec, arguments)
        return result

    def failed(self, arguments: dict[str, Any], exc: BaseException) -> None:
        self.ctx.record_tool_call(self.spec, arguments, "raised", error=f"{type(exc).__name__}: {exc}")


def bind_tool(spec: ToolSpec, ctx: TrialContext) -> Callable[..., Any]:
    """The callable the agent sees for ``spec`` in this trial: same name, docstring and signature."""
    runner = BoundTool(spec, ctx)
    fn = spec.fn
    world_args = (ctx.world,) if spec.takes_world else ()

    if spec.is_async:
        async def call(*args: Any, **kwargs: Any) -> Any:
            arguments, kind = runner.before(args, kwargs)
            try:
                result = await fn(*world_args, *args, **kwargs)
            except Exception as exc:
                runner.failed(arguments, exc)
                raise
            return runner.after(arguments, kind, result)
    else:
        def call(*args: Any, **kwargs: Any) -> Any:
            arguments, kind = runner.before(args, kwargs)
            try:
                result = fn(*world_args, *args, **kwargs)
            except Exception as exc:
                runner.failed(arguments, exc)
                raise
            return runner.after(arguments, kind, result)

    functools.update_wrapper(call, fn)
    del call.__wrapped__  # the visible signature is the one without ``world``
    call.__signature__ = spec.signature  # type: ignore[attr-defined]
    annotations = dict(getattr(fn, "__annotations__", {}))
    annotations.pop("world", None)
    call.__annotations__ = annotations
    call.__agentops_tool__ = spec  # type: ignore[attr-defined]
    return call
