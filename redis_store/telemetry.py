"""OpenTelemetry spans and metrics of store operations.

Every public coroutine of ``RuntimeStore`` (each of meerkat's store methods,
leases, listing, pruning ...) is wrapped once, by ``instrument`` at the end
of ``contract.py``. A call made by the user gets one span and one latency
measurement; calls the store makes to itself inside it (``load_input_states``
inside ``prune_runtime``) are part of the outer one.

It costs nothing unless there is something to report to: without
``opentelemetry-api`` installed (the ``otel`` extra), or with the API but no
SDK configured (the global providers are still the API's placeholders, and
``configure`` was not given providers), the methods are the bare ones, not
wrapped. The wrappers are put in place (or taken away) when ``configure``
is called and whenever a store is created, so an SDK installed at start-up,
before the first store is opened, is seen; one installed later is seen from
the next store opened (or ``configure()`` call) on.
``benchmarks/telemetry.py`` measures both cases.

The names (spans, attributes, metrics) are listed in the README's
Observability section and in ``SPAN_ATTRIBUTES`` / ``METRICS`` below; they
follow OpenTelemetry's database client conventions where one applies
(``db.*``, ``error.type``) and are ``redis_store.*`` otherwise. Runtime ids
may be user data: they are recorded only after
``configure(include_runtime_ids=True)``.

Backends report what only they can see through two hooks, a contextvar
lookup when no operation is being observed: ``note_refusal_retry`` (a command the server
refused without running it is being retried) and ``note_replay`` (a commit
id had already been applied, so nothing was written).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

try:
    from opentelemetry import metrics as _otel_metrics
    from opentelemetry import trace as _otel_trace
except ImportError:  # the otel extra is not installed: instrument() wraps nothing
    _otel_metrics = _otel_trace = None  # type: ignore[assignment]  # modules, or None without the extra

#: Name of the tracer and meter (the instrumentation scope).
SCOPE = "redis_store"

#: Attributes of every span (and, but for the runtime id, of the duration metric).
SPAN_ATTRIBUTES = {
    "db.operation.name": "the store method, e.g. commit_session_boundary",
    "db.system.name": "redis (Redis, Valkey, fakeredis); absent on memory://",
    "db.namespace": "the store's key namespace; absent on memory://",
    "redis_store.backend": "memory, redis or redis-cluster",
    "redis_store.outcome": "ok, replayed, conflict, fenced, unknown, or the exception class",
    "redis_store.refusal_retries": "times the server refused the command unrun and it was retried",
    "error.type": "the exception class, when the call raised",
    "redis_store.runtime_id": "the runtime id: only with configure(include_runtime_ids=True)",
}

#: Every metric: name -> (instrument, unit, what it counts).
METRICS = {
    "db.client.operation.duration": ("histogram", "s", "duration of each store call, by operation and outcome"),
    "redis_store.commits": ("counter", "{commit}", "commits written (commit_session_boundary, atomic_apply)"),
    "redis_store.receipt_conflicts": ("counter", "{conflict}", "atomic_apply calls refused with ReceiptConflict"),
    "redis_store.fenced_writes": ("counter", "{write}", "writes refused with FencedOut"),
    "redis_store.commit_id_replays": ("counter", "{commit}", "retried commit ids answered without writing"),
    "redis_store.refusal_retries": ("counter", "{retry}", "refused commands (TRYAGAIN, NOSCRIPT, READONLY) retried"),
    "redis_store.errors": ("counter", "{error}", "calls that raised, by error.type"),
}

_COMMITS = ("commit_session_boundary", "atomic_apply")


class _Call:
    """What the backend reports about the operation in flight."""

    __slots__ = ("retries", "replayed")

    def __init__(self) -> None:
        self.retries = 0
        self.replayed = False


#: A store's coroutine method, unbound.
_Method = Callable[..., Awaitable[Any]]

_CURRENT: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("redis_store_operation", default=None)


def note_refusal_retry() -> None:
    """Backends: the server refused a command without running it; retrying."""
    call = _CURRENT.get()
    if call is not None:
        call.retries += 1


def note_replay() -> None:
    """Backends: the commit id had already been applied; nothing was written."""
    call = _CURRENT.get()
    if call is not None:
        call.replayed = True


class _Instruments:
    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        self.tracer = None if tracer_provider is None else tracer_provider.get_tracer(SCOPE)
        self.meter = None
        if meter_provider is not None:
            meter = meter_provider.get_meter(SCOPE)
            made = {}
            for name, (kind, unit, description) in METRICS.items():
                create = meter.create_histogram if kind == "histogram" else meter.create_counter
                made[name] = create(name, unit=unit, description=description)
            self.meter = made


class _Settings:
    include_runtime_ids = False
    tracer_provider: Any = None  # explicit ones, from configure()
    meter_provider: Any = None
    # The providers last looked at, and the instruments made for them (None:
    # both were placeholders); instruments are made once per pair.
    seen: tuple[Any, Any] = (None, None)
    instruments: _Instruments | None = None


_SETTINGS = _Settings()
_STORE_ATTRIBUTES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def configure(*, tracer_provider: Any = None, meter_provider: Any = None, include_runtime_ids: bool = False) -> None:
    """Report to these providers instead of the global ones (either may be
    None: the global one is used), and record runtime ids on spans only when
    ``include_runtime_ids`` is True. Call ``configure()`` to go back to the
    defaults."""
    if not isinstance(include_runtime_ids, bool):
        raise TypeError("include_runtime_ids must be a bool")
    _SETTINGS.tracer_provider = tracer_provider
    _SETTINGS.meter_provider = meter_provider
    _SETTINGS.include_runtime_ids = include_runtime_ids
    _SETTINGS.seen, _SETTINGS.instruments = (None, None), None
    _refresh()


def _placeholder(provider: Any) -> bool:
    """True for the API's stand-ins used until an SDK is installed."""
    return type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider")


def _active() -> _Instruments | None:
    """The instruments to report to, or None while no SDK is configured."""
    tracer_provider = _SETTINGS.tracer_provider or _otel_trace.get_tracer_provider()
    meter_provider = _SETTINGS.meter_provider or _otel_metrics.get_meter_provider()
    if (tracer_provider, meter_provider) == _SETTINGS.seen:
        return _SETTINGS.instruments
    tracing, metering = not _placeholder(tracer_provider), not _placeholder(meter_provider)
    found = None
    if tracing or metering:
        found = _Instruments(tracer_provider if tracing else None, meter_provider if metering else None)
    _SETTINGS.seen, _SETTINGS.instruments = (tracer_provider, meter_provider), found
    return found


def _store_attributes(store: Any) -> dict[str, Any]:
    attributes = _STORE_ATTRIBUTES.get(store)
    if attributes is None:
        attributes = {}
        if type(store).__name__ == "InMemoryRuntimeStore":
            attributes["redis_store.backend"] = "memory"
        else:
            attributes["db.system.name"] = "redis"
            attributes["redis_store.backend"] = "redis-cluster" if getattr(store, "_cluster", False) else "redis"
        namespace = getattr(store, "namespace", None)
        if namespace:
            attributes["db.namespace"] = namespace
        _STORE_ATTRIBUTES[store] = attributes
    return attributes


def outcome_of(exc: BaseException) -> str:
    """The ``redis_store.outcome`` of a call that raised ``exc``."""
    from .errors import FencedOut, ReceiptConflict  # here: errors must not depend on telemetry

    if isinstance(exc, ReceiptConflict):
        return "conflict"
    if isinstance(exc, FencedOut):
        return "fenced"
    if getattr(exc, "outcome_known", None) is False or "outcome is unknown" in str(exc):
        return "unknown"
    return type(exc).__name__


def _runtime_of(args: tuple, kwargs: dict) -> str | None:
    first: Any = args[0] if args else kwargs.get("runtime_id", kwargs.get("lease"))
    first = getattr(first, "runtime_id", first)  # a Lease names its runtime
    return None if first is None or isinstance(first, int) else str(first)


async def _observed(
    instruments: _Instruments, operation: str, method: _Method, store: Any, args: tuple, kwargs: dict
) -> Any:
    call = _Call()
    token = _CURRENT.set(call)
    attributes = {"db.operation.name": operation, **_store_attributes(store)}
    outcome, error = "ok", None
    started = time.perf_counter()
    span = None
    if instruments.tracer is not None:
        span_attributes = dict(attributes)
        if _SETTINGS.include_runtime_ids:
            runtime = _runtime_of(args, kwargs)
            if runtime is not None:
                span_attributes["redis_store.runtime_id"] = runtime
        namespace = attributes.get("db.namespace")
        kind = _otel_trace.SpanKind.INTERNAL if "db.system.name" not in attributes else _otel_trace.SpanKind.CLIENT
        span = instruments.tracer.start_span(
            f"{operation} {namespace}" if namespace else operation, kind=kind, attributes=span_attributes
        )
    try:
        if span is None:
            return await method(store, *args, **kwargs)
        with _otel_trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            return await method(store, *args, **kwargs)
    except BaseException as exc:
        outcome, error = outcome_of(exc), type(exc).__name__
        if span is not None:
            span.record_exception(exc)
            span.set_status(_otel_trace.Status(_otel_trace.StatusCode.ERROR, f"{error}: {exc}"[:500]))
        raise
    finally:
        _CURRENT.reset(token)
        if outcome == "ok" and call.replayed:
            outcome = "replayed"
        attributes["redis_store.outcome"] = outcome
        if error is not None:
            attributes["error.type"] = error
        if span is not None:
            span.set_attribute("redis_store.outcome", outcome)
            span.set_attribute("redis_store.refusal_retries", call.retries)
            if error is not None:
                span.set_attribute("error.type", error)
            span.end()
        if instruments.meter is not None:
            _record(instruments.meter, operation, attributes, outcome, error, call, time.perf_counter() - started)


def _record(meter: dict, operation: str, attributes: dict, outcome: str, error: str | None, call: _Call, seconds: float) -> None:
    meter["db.client.operation.duration"].record(seconds, attributes)
    base = {k: v for k, v in attributes.items() if k not in ("redis_store.outcome", "error.type")}
    if operation in _COMMITS and outcome == "ok":
        meter["redis_store.commits"].add(1, base)
    if outcome == "conflict":
        meter["redis_store.receipt_conflicts"].add(1, base)
    if outcome == "fenced":
        meter["redis_store.fenced_writes"].add(1, base)
    if outcome == "replayed":
        meter["redis_store.commit_id_replays"].add(1, base)
    if call.retries:
        meter["redis_store.refusal_retries"].add(call.retries, base)
    if error is not None:
        meter["redis_store.errors"].add(1, {**base, "error.type": error})


def _wrap(operation: str, method: _Method) -> _Method:
    @functools.wraps(method)
    async def observed(self: Any, *args: Any, **kwargs: Any) -> Any:
        instruments = _active()
        if instruments is None or _CURRENT.get() is not None:  # configured away, or inside an operation
            return await method(self, *args, **kwargs)
        return await _observed(instruments, operation, method, self, args, kwargs)

    return observed


#: Public coroutines that are not store operations.
_NOT_OPERATIONS = frozenset({"aclose"})

#: class -> {method name: (the method, its observed wrapper)}.
_INSTRUMENTED: dict[type, dict[str, tuple[Any, Any]]] = {}


def _refresh() -> None:
    """Put the wrappers in place while there is something to report to, and
    the bare methods back otherwise: unobserved calls run no extra code."""
    observing = _active() is not None
    for cls, methods in _INSTRUMENTED.items():
        for name, (bare, observed) in methods.items():
            setattr(cls, name, observed if observing else bare)


def instrument(cls: type) -> type:
    """Observe every public coroutine method defined on ``cls`` whenever an
    SDK is configured: looked at now, on ``configure``, and each time a store
    is created (so an SDK installed at start-up, before the first store is
    opened, is picked up)."""
    if _otel_trace is None:
        return cls
    _INSTRUMENTED[cls] = {
        name: (method, _wrap(name, method))
        for name, method in vars(cls).items()
        if not name.startswith("_") and name not in _NOT_OPERATIONS and inspect.iscoroutinefunction(method)
    }

    def __new__(klass: type, *args: Any, **kwargs: Any) -> Any:
        _refresh()
        return object.__new__(klass)

    cls.__new__ = staticmethod(__new__)  # type: ignore[assignment]  # mypy types __new__ per class; this one fits any
    _refresh()
    return cls
