"""The records of a run on their way out: selected, mapped, validated, spooled.

Nothing here holds a chunk's records in a Python list: rows are streamed from the database
in groups, a batch body is written to a spooled temporary file (memory up to
settings.DELIVERY_SPOOL_MEMORY_BYTES, then disk), and so are a chunk's failures.
"""

from __future__ import annotations

import io
import itertools
import logging
import tempfile
import threading
from array import array
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import msgspec
from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from connectors.schema import CompiledSchema, FieldSpec
from ingest.models import Record
from pipelines.mapping import is_statically_safe, map_record
from pipelines.models import EXCERPT_MAX_CHARS, RecordFailure, Run, RunChunk

logger = logging.getLogger(__name__)

# Records mapped and validated together (one validator call); bounds memory per step.
VALIDATION_GROUP = 1000
DB_FETCH_SIZE = 2000
# Rows of a chunk read at a time as one block (``chunk_blocks``).
BLOCK_ROWS = 2000
BODY_BLOCK_BYTES = 1024 * 1024

# Arbitrary-size integers too (a ``json`` field may hold them), unlike orjson.
encode = msgspec.json.encode
_decode = msgspec.json.Decoder().decode


def run_selection(run: Run) -> QuerySet[Record]:
    """The source records a run covers (a retry run: its parent's failed records)."""
    records = Record.objects.filter(
        organization_id=run.organization_id,
        connector_id=run.pipeline.source_id,
        sequence__gt=run.sequence_from,
        sequence__lte=run.sequence_to,
    )
    if run.parent_id:
        failed = RecordFailure.objects.filter(run_id=run.parent_id).values("sequence")
        records = records.filter(sequence__in=failed)
    return records


def chunk_texts(run: Run, chunk: RunChunk) -> Generator[tuple[int, str], None, None]:
    """``(sequence, stored JSON text)`` of the chunk's records not confirmed yet, in order,
    streamed from the database. Reading text skips Django's JSONField, which decodes with
    the standard library.

    On PostgreSQL the rows come through a server-side cursor, which only closing this
    generator closes: use it in ``contextlib.closing``. Left to the garbage collector (a
    reference cycle can keep it, e.g. an exception's traceback that holds the reader's
    frame), the close runs whenever a collection does, often inside another statement on
    the same connection; that thread then holds psycopg's (non-reentrant) connection lock,
    which the close waits for: a deadlock.
    """
    return _chunk_texts_query(run, chunk).iterator(chunk_size=DB_FETCH_SIZE)


def _chunk_texts_query(run: Run, chunk: RunChunk) -> QuerySet[Record]:
    start = first_unconfirmed(chunk)
    return (
        run_selection(run)
        .filter(sequence__gt=start, sequence__lte=chunk.sequence_to)
        .order_by("sequence")
        .annotate(text=Cast("data", output_field=TextField()))
        .values_list("sequence", "text")
    )


def chunk_blocks(run: Run, chunk: RunChunk) -> Iterator[tuple[Sequence[int], Sequence[bytes]]]:
    """The rows of ``chunk_texts`` in blocks of up to ``BLOCK_ROWS``: ``(sequences, texts)``,
    each text the stored JSON as the UTF-8 bytes the database sends. Call it in a
    transaction (PostgreSQL: a server-side cursor streams the rows).

    On PostgreSQL the rows come in binary, the text loaded as bytes (psycopg's C loader),
    so no row passes through Django or is decoded and encoded again: the per-row Python
    work of ``chunk_texts`` was a third of a large batch's read time.
    """
    if connection.vendor != "postgresql":
        rows = chunk_texts(run, chunk)
        while block := list(itertools.islice(rows, BLOCK_ROWS)):
            yield [sequence for sequence, _ in block], [text.encode() for _, text in block]
        return
    sql, params = _chunk_texts_query(run, chunk).query.sql_with_params()
    connection.ensure_connection()
    with connection.connection.cursor(name=f"osmos_chunk_{chunk.pk}", binary=True) as cursor:
        yield from _blocks(cursor, sql, params)


def _blocks(cursor: Any, sql: str, params: Sequence[Any]) -> Iterator[tuple[list, list]]:
    _execute(cursor, sql, params)
    return _fetched_blocks(cursor)


def _execute(cursor: Any, sql: str, params: Sequence[Any]) -> None:
    from psycopg.types.string import ByteaBinaryLoader

    # The client encoding is UTF-8 (Django's), so a text value's bytes are its UTF-8.
    cursor.adapters.register_loader("text", ByteaBinaryLoader)
    cursor.execute(sql, params)


def _fetched_blocks(cursor: Any) -> Iterator[tuple[list, list]]:
    while rows := cursor.fetchmany(BLOCK_ROWS):
        yield [row[0] for row in rows], [row[1] for row in rows]


def first_unconfirmed(chunk: RunChunk) -> int:
    """The chunk's records still to send are those after this sequence."""
    return max(chunk.sequence_from, chunk.confirmed_through or 0)


class HeldChunk:
    """A chunk's rows (as ``chunk_blocks`` gives them) computed by PostgreSQL ahead of their
    turn, while the run's thread reads and sends the chunk before.

    A thread of its own opens a connection and declares a ``WITH HOLD`` cursor over the
    chunk's rows in autocommit: PostgreSQL computes every row (``jsonb`` to text, what a
    large batch's read waits for) into the cursor's store when that statement commits. The
    thread only waits for that statement, with no Python work, so it does not contend for
    the GIL with the send. ``blocks`` (in the run's thread) then fetches the rows already
    computed. The stored records of a chunk's range never change, so rows computed early
    are the rows read late. PostgreSQL only: memory stays bounded in this process (the
    cursor's store spills to disk on the server, ``work_mem``).
    """

    def __init__(self, run: Run, chunk: RunChunk) -> None:
        self.chunk_id = chunk.pk
        self.start = first_unconfirmed(chunk)
        self._sql, self._params = _chunk_texts_query(run, chunk).query.sql_with_params()
        self._connect = connection.get_connection_params()
        self._connection: Any = None
        self._cursor: Any = None
        self._thread = threading.Thread(target=self._declare, name="osmos-held-chunk", daemon=True)
        self._thread.start()

    def _declare(self) -> None:
        import psycopg

        try:
            self._connection = psycopg.connect(**self._connect, autocommit=True)
            cursor = self._connection.cursor(
                name=f"osmos_held_{self.chunk_id}", binary=True, withhold=True
            )
            _execute(cursor, self._sql, self._params)  # declared: every row computed
        except Exception:
            # Read in turn instead, by the run's thread, where an error is handled as ever.
            logger.warning("computing chunk %s ahead failed", self.chunk_id, exc_info=True)
            return
        self._cursor = cursor

    def matches(self, chunk: RunChunk) -> bool:
        return chunk.pk == self.chunk_id and first_unconfirmed(chunk) == self.start

    def blocks(self) -> Iterator[tuple[list, list]] | None:
        """The chunk's blocks (None: computing them failed); closes when exhausted."""
        self._thread.join()
        if self._cursor is None:
            self.close()
            return None
        return self._fetched()

    def _fetched(self) -> Iterator[tuple[list, list]]:
        try:
            yield from _fetched_blocks(self._cursor)
        finally:
            self.close()

    def close(self) -> None:
        self._thread.join()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def chunk_rows(run: Run, chunk: RunChunk) -> Generator[tuple[int, Any], None, None]:
    """``(sequence, data)`` of the chunk's records in order, decoded by msgspec; close it as
    ``chunk_texts``."""
    return _decoded(chunk_texts(run, chunk))


def _decoded(rows: Iterator[tuple[int, str]]) -> Generator[tuple[int, Any], None, None]:
    return ((sequence, _decode(text)) for sequence, text in rows)


Preparer = Callable[[Iterator[tuple[int, str]], "FailureSpool"], Iterator[tuple[int, bytes]]]


def record_preparer(
    *,
    mapping: dict[str, str],
    source_fields: Sequence[FieldSpec],
    destination_fields: Sequence[FieldSpec],
    schema: CompiledSchema,
) -> Preparer:
    """How a run turns stored rows (``chunk_texts``) into the bytes it sends:
    ``prepare(rows, failures)``.

    - A statically safe pipeline (``is_statically_safe``) whose mapping copies every source
      field to the destination field of the same name sends each stored record as it is
      stored: mapping it would rebuild the very same object. Its bytes may differ from a
      re-encoding (the database's key order and spacing), never its JSON value. This is the
      common case and the one a large batch spends its time in.
    - Any other statically safe pipeline maps and encodes: its records cannot break the
      destination schema.
    - Every other pipeline also validates each mapped record (``validated_records``).
    """
    pairs = tuple(mapping.items())
    safe = is_statically_safe(
        mapping=mapping, source_fields=source_fields, destination_fields=destination_fields
    )
    if safe and _copies_every_field_by_name(mapping, source_fields):
        return StoredAsIs()
    if safe:
        return lambda rows, failures: mapped_records(_decoded(rows), mapping=pairs)
    return lambda rows, failures: validated_records(
        _decoded(rows), mapping=pairs, schema=schema, failures=failures
    )


class StoredAsIs:
    """The preparer that sends each stored record as it is stored (``record_preparer``);
    batch mode reads such a chunk's rows in blocks (``chunk_blocks``)."""

    def __call__(
        self, rows: Iterator[tuple[int, str]], failures: Any
    ) -> Iterator[tuple[int, bytes]]:
        return ((sequence, text.encode()) for sequence, text in rows)


def _copies_every_field_by_name(
    mapping: dict[str, str], source_fields: Sequence[FieldSpec]
) -> bool:
    """Whether mapping a stored record gives back the same object: every source field is
    mapped, to the destination field of its own name (stored records hold no other field)."""
    names = {spec[0] for spec in source_fields}
    return len(mapping) == len(names) and all(
        destination == source and source in names for destination, source in mapping.items()
    )


def mapped_records(
    rows: Iterator[tuple[int, Any]], *, mapping: tuple[tuple[str, str], ...]
) -> Iterator[tuple[int, bytes]]:
    """``(sequence, JSON bytes)`` of each mapped record, unchecked."""
    for sequence, data in rows:
        yield sequence, encode(map_record(data, mapping))


def validated_records(
    rows: Iterator[tuple[int, Any]],
    *,
    mapping: tuple[tuple[str, str], ...],
    schema: CompiledSchema,
    failures: FailureSpool,
) -> Iterator[tuple[int, bytes]]:
    """``(sequence, JSON bytes)`` of each mapped record valid for the destination.

    A record that breaks the destination schema goes to ``failures`` with the validator's
    messages and is not yielded (so it is never sent).
    """
    records = mapped_records(rows, mapping=mapping)
    while group := list(itertools.islice(records, VALIDATION_GROUP)):
        yield from _valid_in(group, schema=schema, failures=failures)


def _valid_in(
    group: list[tuple[int, bytes]], *, schema: CompiledSchema, failures: FailureSpool
) -> Iterator[tuple[int, bytes]]:
    if not group:
        return
    body = b"[" + b",".join(raw for _, raw in group) + b"]"
    result = schema.validate_body(body, kind="array", max_errors=None)
    problems: dict[int, list[str]] = {}
    for error in result.errors:
        problems.setdefault(error.index, []).append(error.message)
    for index, (sequence, raw) in enumerate(group):
        if index in problems:
            reason = "Does not match the destination schema: " + "; ".join(problems[index])
            failures.add(sequence=sequence, record=raw, reason=reason, status=None, excerpt="")
        else:
            yield sequence, raw


_FAILURE_LINE = msgspec.json.Decoder(tuple[int, msgspec.Raw, str, int | None, str])


class FailureSpool:
    """The failed records of one chunk, kept in a spooled file rather than in a list.

    A chunk can hold 250,000 records that all fail; each failure is one JSON line here, and
    ``rows`` reads them back in insert batches when the chunk is confirmed.
    """

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=settings.DELIVERY_SPOOL_MEMORY_BYTES
        )
        self.count = 0

    def add(
        self, *, sequence: int, record: bytes, reason: str, status: int | None, excerpt: str
    ) -> None:
        line = encode([sequence, msgspec.Raw(record), reason, status, excerpt[:EXCERPT_MAX_CHARS]])
        self._file.write(line + b"\n")
        self.count += 1

    def rows(self) -> Iterator[tuple[int, Any, str, int | None, str]]:
        self._file.seek(0)
        for line in self._file:
            sequence, raw, reason, status, excerpt = _FAILURE_LINE.decode(line)
            yield sequence, msgspec.json.decode(raw), reason, status, excerpt

    def close(self) -> None:
        self._file.close()


class FailureBuffer:
    """Failures kept in memory until the step that accounts for their records (single mode
    validates a group of records ahead of sending them, and confirms in smaller steps)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(
        self, *, sequence: int, record: bytes, reason: str, status: int | None, excerpt: str
    ) -> None:
        self.items.append(
            {
                "sequence": sequence,
                "record": record,
                "reason": reason,
                "status": status,
                "excerpt": excerpt,
            }
        )

    def move_to(self, spool: FailureSpool, *, through: int | None) -> None:
        """Move the failures of records up to ``through`` (None: all) into ``spool``."""
        keep = []
        for item in self.items:
            if through is None or item["sequence"] <= through:
                spool.add(**item)
            else:
                keep.append(item)
        self.items = keep


@dataclass(slots=True)
class Outcome:
    """What happened to each record of a chunk: ``delivered`` + ``failures.count`` of them."""

    failures: FailureSpool
    delivered: int = 0


@dataclass(slots=True)
class Step:
    """A part of a chunk accounted for, to be confirmed at once.

    ``done``: every record of the chunk is now accounted for. Otherwise the records up to
    ``through`` are (None: none more), and ``wait`` says why the chunk stops there: a failure
    that makes it wait and be tried again later (``pipelines.retries.must_wait``).
    """

    outcome: Outcome
    done: bool
    through: int | None = None
    wait: Any = None


class BatchBody:
    """A JSON array of records written to a spooled temporary file, addressable by record.

    Records ``i..j-1`` are sent as ``prefix`` + ``[`` + the bytes from the start of record i
    to the end of record j-1 (commas included) + ``]`` + ``suffix``, so every half of a
    bisection reads the same file, inside the same envelope (``prefix``/``suffix``: the
    destination's body template around the array, ``osmos.outbound.shaping.envelope``).
    """

    def __init__(self, *, prefix: bytes = b"", suffix: bytes = b"") -> None:
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=settings.DELIVERY_SPOOL_MEMORY_BYTES
        )
        self._head = prefix + b"["
        self._tail = b"]" + suffix
        # Records are gathered here and written to the file in blocks: one file write per
        # record cost more than mapping the record.
        self._buffer = bytearray(b"[")
        self._position = 1
        self._starts = array("Q")
        self._ends = array("Q")
        self.sequences = array("Q")

    def __len__(self) -> int:
        return len(self.sequences)

    def add(self, sequence: int, raw: bytes) -> None:
        buffer = self._buffer
        if self.sequences:
            buffer += b","
            self._position += 1
        self._starts.append(self._position)
        buffer += raw
        self._position += len(raw)
        self._ends.append(self._position)
        self.sequences.append(sequence)
        if len(buffer) >= BODY_BLOCK_BYTES:
            self._flush()

    def add_block(self, sequences: Sequence[int], raws: Sequence[bytes]) -> None:
        """``add`` of each record of a block, in order, without a Python step per record."""
        if not raws:
            return
        buffer = self._buffer
        if self.sequences:
            buffer += b","
            self._position += 1
        start = self._position
        lengths = list(map(len, raws))
        # Record i starts after the records before it and their commas, and ends before
        # its own comma: the running sums of (length + 1) from start, and from start - 1.
        steps = list(map((1).__add__, lengths))
        self._starts.extend(itertools.accumulate(steps[:-1], initial=start))
        ends = itertools.accumulate(steps, initial=start - 1)
        next(ends)
        self._ends.extend(ends)
        joined = b",".join(raws)
        buffer += joined
        self._position += len(joined)
        self.sequences.extend(sequences)
        if len(buffer) >= BODY_BLOCK_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._file.seek(0, io.SEEK_END)  # record() and parts move the position
            self._file.write(self._buffer)
            self._buffer = bytearray()

    def part(self, start: int, stop: int) -> BodySlice:
        self._flush()
        return BodySlice(
            self._file, self._starts[start], self._ends[stop - 1], head=self._head, tail=self._tail
        )

    def record(self, index: int) -> bytes:
        self._flush()
        self._file.seek(self._starts[index])
        return self._file.read(self._ends[index] - self._starts[index])

    def close(self) -> None:
        self._file.close()


class BodySlice(io.RawIOBase):
    """A read-only file: ``head`` + bytes [start, end) of ``source`` + ``tail`` (by default
    ``[`` and ``]``: a JSON array)."""

    def __init__(
        self, source: IO[bytes], start: int, end: int, *, head: bytes = b"[", tail: bytes = b"]"
    ) -> None:
        super().__init__()
        self._source = source
        self._start = start
        self._head = head
        self._tail = tail
        self._inner_end = len(head) + end - start  # where the tail starts
        self._length = self._inner_end + len(tail)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(base + offset, 0), self._length)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        remaining = self._length - self._position
        if size is None or size < 0 or size > remaining:
            size = remaining
        if size == 0:
            return b""
        out = bytearray()
        head = len(self._head)
        if self._position < head:
            piece = self._head[self._position : self._position + size]
            out += piece
            self._position += len(piece)
            size -= len(piece)
        inner = min(size, self._inner_end - self._position)
        if inner > 0:
            self._source.seek(self._start + self._position - head)
            data = self._source.read(inner)
            out += data
            self._position += len(data)
            size -= len(data)
        if size > 0 and self._position >= self._inner_end:
            offset = self._position - self._inner_end
            piece = self._tail[offset : offset + size]
            out += piece
            self._position += len(piece)
        return bytes(out)
