"""``redis-store export``, ``import`` and ``copy``: moving runtimes between
any two stores (memory://, Redis, Cluster, Sentinel, Valkey, a file).

Everything streams, one runtime at a time: memory holds one runtime's line
(and, while exporting a whole store, the ids already listed, since a SCAN
may repeat one). ``copy`` is an export piped into an import in one process,
through the same lines and checks as a file.

Import, per runtime line, in order:

* the line is parsed and checked completely (every value reads back
  unchanged, the store's invariants hold: ``dumpfile.parse_runtime``);
* a target runtime holding exactly this data already is left alone (so a
  re-run imports nothing twice); one holding other data is refused, naming
  it, unless ``replace``;
* the runtime is written in one atomic step (``restore_runtime``): all of
  it or nothing. Its fencing epoch is never lowered.

The first bad line stops the import with a ``DumpError`` naming it; every
runtime of the lines before it is imported whole, none of the bad line's.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable

from . import audit
from .contract import RawRuntime, RuntimeStore, runtime_key
from .dumpfile import (
    DumpError,
    RuntimeDump,
    encode_line,
    header,
    is_trailer,
    parse_header,
    parse_runtime,
    read_line,
    runtime_line,
    trailer,
)


class NothingStored(DumpError):
    """An export named a runtime with nothing stored."""


@dataclasses.dataclass
class ImportReport:
    imported: int = 0  # written (new on the target, or replaced)
    replaced: int = 0  # of which held other data before (--replace)
    unchanged: int = 0  # held exactly this data already

    @property
    def runtimes(self) -> int:
        return self.imported + self.unchanged


class ImportStopped(DumpError):
    """An import stopped at a bad line; ``report`` tells what was done before."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


class TerminalProgress:
    """``\\r<verb> N runtimes`` on stderr, when it is a terminal; silent otherwise."""

    def __init__(self, verb: str, enabled: bool = True) -> None:
        self.verb = verb
        self.enabled = enabled and sys.stderr.isatty()
        self.started = self.last = time.monotonic()
        self.count = 0

    def __call__(self, count: int) -> None:
        self.count = count
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.2:
            self.last = now
            rate = count / max(now - self.started, 1e-9)
            sys.stderr.write(f"\r{self.verb} {count} runtimes ({rate:,.0f}/s)")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.count:
            sys.stderr.write(f"\r{self.verb} {self.count} runtimes\n")


#: Called with the number of runtimes done so far.
Progress = Callable[[int], None]


def _quiet(count: int) -> None:
    pass


async def export_lines(store: RuntimeStore, runtimes: Iterable[str] | None = None, progress: Progress = _quiet) -> AsyncIterator[bytes]:
    """The dump of ``runtimes`` (default: every runtime), line by line.
    A named runtime with nothing stored raises ``NothingStored``."""
    yield encode_line(header())
    count = 0
    named = None if runtimes is None else [runtime_key(rid) for rid in runtimes]
    ids = audit.runtime_ids(store) if named is None else _each(named)
    async for rid in ids:
        raw = await store.dump_runtime(rid)
        if not raw.meta:  # deleted since it was listed, or never stored
            if named is not None:
                raise NothingStored(f"runtime {rid!r}: nothing is stored for it")
            continue
        yield encode_line(runtime_line(rid, raw, await store.fencing_epoch(rid)))
        count += 1
        progress(count)
    yield encode_line(trailer(count))


async def _each(items: Iterable[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


async def _lines(source: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(source, AsyncIterable):
        async for line in source:
            yield line
    else:
        for line in source:
            yield line


def _same_data(a: RawRuntime, b: RawRuntime) -> bool:
    return (a.state, a.snapshot, a.input_order, a.inputs, a.receipts, a.run_seqs, a.meta) == (
        b.state, b.snapshot, b.input_order, b.inputs, b.receipts, b.run_seqs, b.meta
    )


async def import_lines(
    store: RuntimeStore, source: Iterable[bytes] | AsyncIterable[bytes], *, replace: bool = False, progress: Progress = _quiet
) -> ImportReport:
    """Import a dump (its lines, newline included). Raises ``ImportStopped``
    at the first line that cannot be imported (see module doc)."""
    report = ImportReport()
    number, ended = 0, False
    await store.list_runtimes(0, 1)  # reach the target first: an unreachable one fails before any line is read
    try:
        async for text in _lines(source):
            number += 1
            if number == 1:
                parse_header(text)
                continue
            if ended:
                raise DumpError(f"line {number}: data after the trailer line")
            value = read_line(text, number)
            if is_trailer(value):
                if value.get("runtimes") != report.runtimes:
                    raise DumpError(f"line {number}: the trailer counts {value.get('runtimes')!r} runtimes, "
                                    f"the file holds {report.runtimes}")
                ended = True
                continue
            await _restore(store, parse_runtime(value, number), number, replace, report)
            progress(report.runtimes)
        if number == 0:
            raise DumpError("the input is empty: not a redis-store dump")
        if not ended:
            raise DumpError(f"the file ends after line {number} without its trailer line: it is truncated")
    except DumpError as exc:
        raise ImportStopped(
            f"{exc}. Imported before it: {report.imported} runtimes ({report.unchanged} already there); "
            "none of the line named", report
        ) from None
    return report


async def _restore(store: RuntimeStore, dump: RuntimeDump, number: int, replace: bool, report: ImportReport) -> None:
    rid = dump.runtime_id
    existing = await store.dump_runtime(rid)
    if existing.meta:
        if _same_data(existing, dump.raw):
            report.unchanged += 1
            return
        if not replace:
            raise DumpError(f"line {number}: runtime {rid!r} already holds other data on the target; "
                            "pass --replace to overwrite it")
    if not await store.restore_runtime(rid, dump.raw, epoch=dump.epoch, replace=bool(existing.meta)):
        raise DumpError(f"line {number}: runtime {rid!r} was written on the target during the import; "
                        "pass --replace to overwrite it")
    report.imported += 1
    report.replaced += bool(existing.meta)


async def copy_store(
    source: RuntimeStore, target: RuntimeStore, runtimes: Iterable[str] | None = None, *, replace: bool = False,
    progress: Progress = _quiet,
) -> ImportReport:
    """Export from ``source`` straight into ``target`` (line numbers in errors
    count as in the file an export would write)."""
    return await import_lines(target, export_lines(source, runtimes), replace=replace, progress=progress)
