"""A declared tool bound to one trial: the wrapper the agent calls runs the call through the layers.

The pipeline of a call: liveness and the step hooks, argument binding, then each layer's ``before_tool``
(scope and confirmation gate, tool faults, ...) in order, ``on_tool_start``, the tool itself,
``after_tool`` (result-shaping faults), and the call is counted and traced (``on_tool_recorded``). The
bound wrapper keeps the tool's name, docstring and signature minus ``world``, so frameworks that introspect
tools (pydantic-ai, openai-agents, LangChain) see exactly the function the model should call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import hide_own_frames
from ..process.trial_random import ACTIVE_RANDOM
from ..settings.tools import ToolSpec
from .layer import ToolCall

__tracebackhide__ = hide_own_frames

if TYPE_CHECKING:
    from .context import TrialContext

_EMPTY = inspect.Parameter.empty
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Binder:
    """Binds a call's arguments to a tool's signature as ``signature.bind`` and ``apply_defaults`` do, for the
    calls that bind plainly (``bind`` gives None for the others: then ``signature.bind`` itself decides, and
    names any error). Made once per tool and campaign (``ToolTemplate``)."""

    __slots__ = ("params",)

    def __init__(self, signature: inspect.Signature):
        found = list(signature.parameters.values())
        kinds = [p.kind for p in found]
        plain = inspect.Parameter.VAR_POSITIONAL not in kinds and inspect.Parameter.VAR_KEYWORD not in kinds
        # (name, default, may come by position, may come by name) of each parameter; None with *args/**kwargs
        self.params = tuple((p.name, p.default, p.kind in _POSITIONAL, p.kind in _BY_NAME)
                            for p in found) if plain else None

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """``(explicit, with defaults)`` arguments of a call that binds plainly; None otherwise."""
        params = self.params
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

    __slots__ = ("binder", "calls", "ctx", "spec")

    def __init__(self, spec: ToolSpec, ctx: TrialContext, binder: Binder):
        self.spec = spec
        self.ctx = ctx
        self.binder = binder
        self.calls = 0

    def before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolCall:
        """Liveness, argument binding, every layer's ``permit`` and ``before_tool``; returns the call, cleared
        to run."""
        spec, ctx = self.spec, self.ctx
        if ctx._abort is not None:  # liveness, and the layers' step hooks (``begin_step``, written out: every call)
            ctx.raise_if_ended()
        hooks = ctx.hooks
        for check in hooks["check"]:
            check()
        for hook in hooks["before_step"]:
            hook("tool")
        fast = self.binder.bind(args, kwargs)  # the common case, without inspect's machinery
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
        call = ToolCall(spec, explicit, arguments)
        for hook in hooks["permit"]:
            hook(call)
        call.index = self.calls
        self.calls += 1
        try:
            for hook in hooks["before_tool"]:
                hook(call)
        except BaseException:
            for undo in hooks["on_tool_not_run"]:
                undo(call)
            raise
        for hook in hooks["on_tool_start"]:
            hook(call)
        return call

    def after(self, call: ToolCall, result: Any) -> Any:
        """The tool returned: every layer's ``after_tool`` (result-shaping faults), then count and trace."""
        for hook in self.ctx.hooks["after_tool"]:
            result = hook(call, result)
        self.ctx.record_tool_call(self.spec, call.arguments, call.fault or "ok", result=result)
        return result

    def failed(self, call: ToolCall, exc: BaseException) -> None:
        self.ctx.record_tool_call(self.spec, call.arguments, "raised", error=f"{type(exc).__name__}: {exc}")


class ToolTemplate:
    """A tool's wrapper, made once per campaign: ``bind(ctx)`` gives the callable the agent sees in one trial.

    The wrapper's face (name, docstring, signature without ``world``, annotations) is worked out here once;
    each trial gets a new function object over the same code (``_wrapper``'s maker), whose closure holds that
    trial's runner, and a copy of that face. The trial is captured, not looked up (a context variable would
    not reach a thread the agent starts itself, nor route a late call from an abandoned thread to the trial it
    belongs to), and a trial costs one function object per tool instead of ``functools.update_wrapper``.
    """

    __slots__ = ("_binder", "_make", "_namespace", "_origin", "spec")

    def __init__(self, spec: ToolSpec):
        self.spec = spec
        self._binder = Binder(spec.signature)
        self._make = _wrapper(spec)
        origin = dress(self._make(None, ()), spec)
        self._origin = origin
        self._namespace = origin.__dict__  # copied into every trial's copy (its signature, its spec)

    def bind(self, ctx: TrialContext) -> Callable[..., Any]:
        """The callable the agent sees for this tool in the trial ``ctx``."""
        origin = self._origin
        call = self._make(BoundTool(self.spec, ctx, self._binder), (ctx.world,) if self.spec.takes_world else ())
        call.__name__ = origin.__name__
        call.__qualname__ = origin.__qualname__
        call.__doc__ = origin.__doc__
        call.__module__ = origin.__module__
        call.__annotations__ = origin.__annotations__.copy()
        call.__dict__ = self._namespace.copy()  # each trial's own: what an agent sets on a tool stays in its trial
        return call


def dress(wrapper: Callable[..., Any], spec: ToolSpec) -> Callable[..., Any]:
    """Give ``wrapper`` (a function) the face of ``spec``'s tool, and return it: the tool's name, qualified name,
    module, docstring and attributes, its signature and annotations without ``world``, and the spec itself
    (``__agentops_tool__``). The one place a tool's face is made: in-process (``ToolTemplate``) and in an
    isolated agent's process (``child.child_side``), so frameworks see the same function either way."""
    functools.update_wrapper(wrapper, spec.fn)
    del wrapper.__wrapped__  # type: ignore[attr-defined]  (the visible signature is the one without ``world``)
    wrapper.__signature__ = spec.signature  # type: ignore[attr-defined]
    annotations = dict(getattr(spec.fn, "__annotations__", {}))
    annotations.pop("world", None)
    wrapper.__annotations__ = annotations
    wrapper.__agentops_tool__ = spec  # type: ignore[attr-defined]
    return wrapper


def _stop_drawing(token: Any) -> None:
    """The tool has returned: ``random`` draws from what it drew from before (the agent's stream). A tool that
    left its context (a coroutine driven from another one) keeps the value it set there."""
    try:  # (not ``contextlib.suppress``: a context manager per call costs more than the call)
        ACTIVE_RANDOM.reset(token)
    except ValueError:
        return


def _wrapper(spec: ToolSpec) -> Callable[[BoundTool | None, tuple[Any, ...]], Callable[..., Any]]:
    """The maker of the tool's wrapper: ``make(runner, world_args)`` gives a function over the same code whose
    closure holds that trial's runner (a closure the interpreter makes: cheaper than building the function and
    its cells by hand). The tool itself draws ``random``'s numbers from the trial's tool stream
    (``TrialContext.tool_random``)."""
    fn = spec.fn

    if spec.is_async:
        def make(runner: BoundTool | None, world_args: tuple[Any, ...]) -> Callable[..., Any]:
            async def call(*args: Any, **kwargs: Any) -> Any:
                planned = runner.before(args, kwargs)  # type: ignore[union-attr]
                active, ctx = ACTIVE_RANDOM.get(), runner.ctx  # type: ignore[union-attr]
                drawing = ACTIVE_RANDOM.set(ctx.tool_random if active is None or not active.job
                                            else ctx.tool_random_of(active))
                try:
                    result = await fn(*world_args, *args, **kwargs)
                except BaseException as exc:  # KeyboardInterrupt or SystemExit from a tool is a failed call too
                    _stop_drawing(drawing)
                    runner.failed(planned, exc)  # type: ignore[union-attr]
                    raise
                _stop_drawing(drawing)
                return runner.after(planned, result)  # type: ignore[union-attr]
            return call
    else:
        def make(runner: BoundTool | None, world_args: tuple[Any, ...]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                planned = runner.before(args, kwargs)  # type: ignore[union-attr]
                active, ctx = ACTIVE_RANDOM.get(), runner.ctx  # type: ignore[union-attr]
                drawing = ACTIVE_RANDOM.set(ctx.tool_random if active is None or not active.job
                                            else ctx.tool_random_of(active))
                try:
                    result = fn(*world_args, *args, **kwargs)
                except BaseException as exc:  # KeyboardInterrupt or SystemExit from a tool is a failed call too
                    ACTIVE_RANDOM.reset(drawing)  # (same thread, same context)
                    runner.failed(planned, exc)  # type: ignore[union-attr]
                    raise
                ACTIVE_RANDOM.reset(drawing)
                return runner.after(planned, result)  # type: ignore[union-attr]
            return call
    return make
