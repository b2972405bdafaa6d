"""OpenTelemetry: the documented spans and metrics, seen through the SDK's
in-memory exporters, on memory:// and a real Redis server."""

from __future__ import annotations

import inspect
import subprocess
import sys

import msgspec
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import TryAgainError

from conftest import _backend
from redis_store import FencedOut, InputId, InputState, ReceiptConflict, RunApplyBoundary, RunId, SessionDelta, telemetry
from redis_store.contract import RuntimeStore
from sessions import session_json

observed_backend = pytest.fixture(params=["memory", "redis"])(_backend)


class Seen:
    def __init__(self, include_runtime_ids: bool = False) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        telemetry.configure(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[self.reader]),
                            include_runtime_ids=include_runtime_ids)

    def finished(self, operation: str | None = None) -> list:
        spans = self.spans.get_finished_spans()
        return [s for s in spans if operation is None or s.attributes["db.operation.name"] == operation]

    def points(self, name: str) -> list:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def total(self, name: str, **attributes) -> int:
        return sum(p.value for p in self.points(name) if all(p.attributes.get(k) == v for k, v in attributes.items()))


@pytest.fixture
def seen():
    seen = Seen()
    yield seen
    telemetry.configure()


def _delta(messages: int = 2) -> SessionDelta:
    return SessionDelta(session_json(messages))


async def _commit(store, rid: str, commit_id: str | None = None, lease=None, run_id: RunId | None = None):
    state = InputState.new_accepted(InputId.new())
    target = store if lease is None else store.fenced(lease)
    return await target.commit_session_boundary(
        rid, _delta(), run_id or RunId.new(), RunApplyBoundary.RUN_START, [state.input_id], [state], commit_id=commit_id
    )


async def test_a_span_per_operation_with_the_documented_attributes(observed_backend, seen):
    store = observed_backend.open()
    await _commit(store, "rt-1")
    assert await store.load_input_states("rt-1")
    await store.load_session_snapshot("rt-1")
    await store.list_runtimes()
    names = [s.attributes["db.operation.name"] for s in seen.finished()]
    assert names == ["commit_session_boundary", "load_input_states", "load_session_snapshot", "list_runtimes"]
    span = seen.finished("commit_session_boundary")[0]
    assert span.attributes["redis_store.outcome"] == "ok"
    assert span.attributes["redis_store.refusal_retries"] == 0
    assert "redis_store.runtime_id" not in span.attributes  # user data: off by default
    if observed_backend.is_redis:
        assert span.kind == SpanKind.CLIENT
        assert span.name == f"commit_session_boundary {observed_backend.namespace}"
        assert span.attributes["db.system.name"] == "redis"
        assert span.attributes["db.namespace"] == observed_backend.namespace
        assert span.attributes["redis_store.backend"] == "redis"
    else:
        assert span.kind == SpanKind.INTERNAL
        assert span.name == "commit_session_boundary"
        assert span.attributes["redis_store.backend"] == "memory"
        assert "db.system.name" not in span.attributes
    assert set(span.attributes) <= set(telemetry.SPAN_ATTRIBUTES)
    assert seen.total("redis_store.commits", **{"db.operation.name": "commit_session_boundary"}) == 1
    durations = {p.attributes["db.operation.name"]: p for p in seen.points("db.client.operation.duration")}
    assert set(durations) == set(names)
    assert durations["commit_session_boundary"].count == 1 and durations["commit_session_boundary"].sum > 0
    assert durations["commit_session_boundary"].attributes["redis_store.outcome"] == "ok"


async def test_runtime_ids_only_when_asked_for(observed_backend, seen):
    seen = Seen(include_runtime_ids=True)
    store = observed_backend.open()
    lease = await store.acquire_lease("rt-secret", "w", 5)
    await store.renew_lease(lease)
    await store.list_runtimes()
    ids = [s.attributes.get("redis_store.runtime_id") for s in seen.finished()]
    assert ids == ["rt-secret", "rt-secret", None]


async def test_replays_conflicts_and_fenced_writes_are_counted(observed_backend, seen):
    store = observed_backend.open()
    run_id = RunId.new()
    receipt = await _commit(store, "rt-2", commit_id="c-1", run_id=run_id)
    state = InputState.new_accepted(InputId.new())
    first = seen.finished("commit_session_boundary")[0]
    assert first.attributes["redis_store.outcome"] == "ok"
    with pytest.raises(ReceiptConflict):
        await store.atomic_apply("rt-2", None, receipt, [state])
    await store.atomic_apply("rt-2", None, msgspec.structs.replace(receipt, sequence=5), [], commit_id="a-1")
    await store.atomic_apply("rt-2", None, msgspec.structs.replace(receipt, sequence=5), [], commit_id="a-1")
    lease = await store.acquire_lease("rt-2", "w", 5)
    await store.revoke_lease("rt-2")
    with pytest.raises(FencedOut):
        await store.fenced(lease).persist_input_state("rt-2", state)

    outcomes = [(s.attributes["db.operation.name"], s.attributes["redis_store.outcome"]) for s in seen.finished()]
    assert outcomes == [
        ("commit_session_boundary", "ok"),
        ("atomic_apply", "conflict"),
        ("atomic_apply", "ok"),
        ("atomic_apply", "replayed"),
        ("acquire_lease", "ok"),
        ("revoke_lease", "ok"),
        ("persist_input_state", "fenced"),
    ]
    conflict = seen.finished("atomic_apply")[0]
    assert conflict.status.status_code == StatusCode.ERROR
    assert conflict.attributes["error.type"] == "ReceiptConflict"
    assert [e.name for e in conflict.events] == ["exception"]
    assert seen.total("redis_store.commits") == 2
    assert seen.total("redis_store.commit_id_replays") == 1
    assert seen.total("redis_store.receipt_conflicts") == 1
    assert seen.total("redis_store.fenced_writes") == 1
    assert seen.total("redis_store.errors", **{"error.type": "ReceiptConflict"}) == 1
    assert seen.total("redis_store.errors", **{"error.type": "FencedOut"}) == 1
    assert seen.total("redis_store.errors") == 2


async def test_a_bad_argument_is_an_error_class_outcome(observed_backend, seen):
    store = observed_backend.open()
    with pytest.raises(TypeError):
        await store.load_runtime_state(42)
    span = seen.finished()[0]
    assert span.attributes["redis_store.outcome"] == "TypeError"
    assert seen.total("redis_store.errors", **{"error.type": "TypeError"}) == 1


async def test_calls_inside_an_operation_are_part_of_it(observed_backend, seen):
    store = observed_backend.open()
    await _commit(store, "rt-3")
    seen.spans.clear()
    await store.prune_runtime("rt-3", keep_runs=0)  # reads inputs and the dump inside
    await store.load_input_states("rt-3")  # calls load_readable_input_states inside
    assert [s.attributes["db.operation.name"] for s in seen.finished()] == ["prune_runtime", "load_input_states"]


async def test_refusal_retries_are_on_the_span_and_counted(redis_server, seen):
    from conftest import Backend

    backend = Backend("redis", redis_server)
    store = backend.open()
    try:
        await store.list_runtimes()  # first use: scripts loaded
        real = store._scripts.lifecycle_commit
        refusals = iter([TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
                         TryAgainError("TRYAGAIN again")])

        def refusing(**kwargs):
            refusal = next(refusals, None)
            if refusal is not None:
                raise refusal
            return real(**kwargs)

        store._scripts.lifecycle_commit = refusing
        await store.persist_input_state("rt-4", InputState.new_accepted(InputId.new()))
        span = seen.finished("persist_input_state")[0]
        assert span.attributes["redis_store.refusal_retries"] == 2
        assert span.attributes["redis_store.outcome"] == "ok"
        assert seen.total("redis_store.refusal_retries") == 2
        assert len(await store.load_input_states("rt-4")) == 1  # it did run, once
    finally:
        await backend.close()


def _observed_methods() -> set[str]:
    return {name for name, value in vars(RuntimeStore).items() if not name.startswith("_") and hasattr(value, "__wrapped__")}


def test_without_an_sdk_the_methods_are_the_bare_ones():
    telemetry.configure()
    assert telemetry._active() is None  # the global providers are the API's placeholders here
    assert not _observed_methods()


def test_without_the_api_nothing_is_wrapped():
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from redis_store.contract import RuntimeStore\n"
        "assert not hasattr(RuntimeStore.commit_session_boundary, '__wrapped__')\n"
        "print('unwrapped')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "unwrapped", done.stderr


def test_every_public_operation_is_observed_while_an_sdk_is_configured(seen):
    wrapped = _observed_methods()
    assert {"commit_session_boundary", "atomic_apply", "load_input_states", "acquire_lease", "prune_runtime",
            "restore_runtime", "memory_usage"} <= wrapped
    assert "aclose" not in wrapped and "fenced" not in wrapped
    assert all(inspect.iscoroutinefunction(getattr(RuntimeStore, name)) for name in wrapped)
    telemetry.configure()
    assert not _observed_methods()


def test_a_global_sdk_installed_before_the_first_store_is_used():
    code = (
        "import asyncio\n"
        "import redis_store\n"  # imported first, as an application would
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "spans = InMemorySpanExporter(); provider = TracerProvider()\n"
        "provider.add_span_processor(SimpleSpanProcessor(spans)); trace.set_tracer_provider(provider)\n"
        "store = redis_store.open_store('memory://')\n"
        "asyncio.run(store.load_runtime_state('rt'))\n"
        "print([s.name for s in spans.get_finished_spans()])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "['load_runtime_state']", done.stderr
