"""The records of a run on their way out: selected, mapped, validated, spooled.

Nothing here holds a chunk's records in a Python list: rows are streamed from the database
in groups, a batch body is written to a spooled temporary file (memory up to
settings.DELIVERY_SPOOL_MEMORY_BYTES, then disk), and so are a chunk's failures.
"""

from __future__ import annotations

import io
import itertools
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import msgspec
from django.conf import settings

from connectors.schema import CompiledSchema, FieldSpec
from pipelines.chunk_reader import decoded
from pipelines.mapping import is_statically_safe, map_record
from pipelines.models import EXCERPT_MAX_CHARS

# Records mapped and validated together (one validator call); bounds memory per step.
VALIDATION_GROUP = 1000
BODY_BLOCK_BYTES = 1024 * 1024

# Arbitrary-size integers too (a ``json`` field may hold them), unlike orjson.
encode = msgspec.json.encode


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
        return lambda rows, failures: mapped_records(decoded(rows), mapping=pairs)
    return lambda rows, failures: validated_records(
        decoded(rows), mapping=pairs, schema=schema, failures=failures
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
