"""The intake journal: what the webhook waits for, as append-only segment files.

A batch of notifications is one `write` and, with `synchronous: full`, one `fdatasync`, on a
thread of its own: the least a durable append can cost, and nothing on the event loop but the
hand-off. Every record carries its sequence number and a CRC, so a record torn by a crash (or by
a failed write) reads as the end of its segment. Nothing is ever written behind such a tail:
after opening, and after any failed write, appends go to a new segment.

The decision record remembers how far it has digested by sequence number; a segment is deleted
once everything in it is digested (the record keeps its own copy of each body). Recent records
stay in memory too, so the digester, which follows right behind the writer, rarely reads the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from remediator.store.base import StoreUnavailable

MAGIC = b"RMJNL\x00\x00\x01"  # file type and format version, at the start of every segment
# crc32 (of everything after it, body included), body length, sequence number, received at (us)
HEADER = struct.Struct("<IIQq")
SEGMENT_BYTES = 16 * 2**20  # a segment is closed for writing once it is this large
_CACHE_BYTES = 8 * 2**20  # recent bodies kept in memory for the digester
_SUFFIX = ".seg"

Record = tuple[int, datetime, bytes]  # (sequence number, received at, body)
_T = TypeVar("_T")


def journal_path(state: Path) -> Path:
    """The journal's directory, beside the state file: back up and move both together."""
    return state.with_name(state.name + ".journal")


def encode(seq: int, received_at: datetime, body: bytes) -> bytes:
    rest = HEADER.pack(0, len(body), seq, _micros(received_at))[4:]
    crc = zlib.crc32(body, zlib.crc32(rest))
    return struct.pack("<I", crc) + rest + body


def records(stream: BinaryIO) -> Iterator[tuple[int, Record]]:
    """(offset after it, record) for each intact record from the stream's position,
    stopping at the first one that is not (a torn tail, or the end)."""
    offset = stream.tell()
    size = os.fstat(stream.fileno()).st_size
    while True:
        header = stream.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        crc, length, seq, micros = HEADER.unpack(header)
        if length > size - offset - HEADER.size:
            return  # a torn header's length: do not try to read (or allocate) it
        body = stream.read(length)
        if len(body) < length or zlib.crc32(body, zlib.crc32(header[4:])) != crc:
            return
        offset += HEADER.size + length
        received = datetime.fromtimestamp(micros / 1e6, UTC)
        yield offset, (seq, received, body)


@dataclass(eq=False)  # compared by identity
class _Segment:
    path: Path
    first: int  # its first record's sequence number (and its name)
    last: int  # the last intact record's (first - 1 while empty)


@dataclass
class _Cursor:
    """Where the last read from disk stopped, so the next one need not rescan the segment."""

    segment: _Segment
    offset: int
    seq: int


class Journal:
    def __init__(self, path: Path, *, synchronous: str, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.path = path
        self._sync = synchronous.lower() == "full"
        self._segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._next = 1  # the next sequence number to hand out; never reused, even on failure
        self._durable = 0  # everything through this sequence number is written (and synced)
        # Owned by the writer thread between appends: the segment being written and its fd.
        self._fd: int | None = None
        self._current: _Segment | None = None
        self._size = 0
        self._failure: str | None = None
        self._cache: deque[Record] = deque()
        self._cache_bytes = 0
        self._cursor: _Cursor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self, digested_through: int) -> None:
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="journal-write")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="journal-read")
        try:
            self._segments = await self._on(self._reader, self._scan, digested_through)
        except OSError as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open intake journal {self.path}: {exc}") from exc
        last = max((s.last for s in self._segments), default=0)
        # The floor: a journal deleted or replaced by hand would otherwise number from 1
        # again, behind what is digested, and those notifications would be skipped for good.
        self._next = max(last, digested_through) + 1
        self._durable = self._next - 1

    async def close(self) -> None:
        pools = [pool for pool in (self._writer, self._reader) if pool is not None]
        self._writer = self._reader = None  # refuses new work from here on
        for pool in pools:
            await asyncio.to_thread(pool.shutdown)  # lets a write in progress finish
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = self._current = None
        self._cache.clear()
        self._cache_bytes = 0
        self._cursor = None

    async def ping(self) -> None:
        """Raise StoreUnavailable unless an append could succeed now."""
        if self._writer is None:
            raise StoreUnavailable("intake journal is not open")
        if self._failure is not None:
            # The next append opens a new segment; try creating a file where it would go, so
            # readiness heals as soon as the disk does and gives the reason while it does not.
            # (Not the segment itself: its number belongs to the next append.)
            try:
                await self._on(self._writer, self._probe)
            except OSError as exc:
                raise StoreUnavailable(f"intake journal not writable: {exc}") from exc
            self._failure = None

    # -- writing ---------------------------------------------------------------------------
    async def append(self, rows: Sequence[tuple[datetime, bytes]]) -> list[int]:
        """(received_at, body) rows, durable on return; their sequence numbers, in order."""
        if self._writer is None:
            raise StoreUnavailable("intake journal is not open")
        first = self._next
        self._next += len(rows)
        try:
            segment = await self._on(self._writer, self._write, first, rows)
        except OSError as exc:
            self._failure = str(exc)
            self._cache.clear()  # what follows is not contiguous with it on disk
            self._cache_bytes = 0
            raise StoreUnavailable(f"intake journal write failed: {exc}") from exc
        self._failure = None
        last = first + len(rows) - 1
        if not self._segments or self._segments[-1] is not segment:
            self._segments.append(segment)
        segment.last = last
        self._durable = last
        for seq, (received, body) in enumerate(rows, first):
            self._cache.append((seq, received, body))
            self._cache_bytes += len(body)
        while self._cache_bytes > _CACHE_BYTES and len(self._cache) > 1:
            self._cache_bytes -= len(self._cache.popleft()[2])
        return list(range(first, last + 1))

    def _write(self, first: int, rows: Sequence[tuple[datetime, bytes]]) -> _Segment:
        """Writer thread: one write (and one sync) for the whole batch."""
        segment = self._ensure_segment(first)
        data = b"".join(
            encode(seq, received, body) for seq, (received, body) in enumerate(rows, first)
        )
        assert self._fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if self._sync:
                os.fdatasync(self._fd)
        except OSError:
            # Part of the batch may be on disk: never write behind it.
            self._close_segment()
            raise
        self._size += len(data)
        if self._size >= self._segment_bytes:
            self._close_segment()
        return segment

    def _ensure_segment(self, first: int) -> _Segment:
        """The segment being written, or a new one whose first record will be `first`."""
        if self._fd is not None and self._current is not None:
            return self._current
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / f"{first:020d}{_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            os.ftruncate(fd, 0)  # a leftover of a failed attempt at this same number
            os.write(fd, MAGIC)
            if self._sync:
                os.fdatasync(fd)
                _sync_directory(self.path)  # the new name survives a power loss too
        except OSError:
            os.close(fd)
            raise
        self._fd, self._size = fd, len(MAGIC)
        self._current = _Segment(path, first, first - 1)
        return self._current

    def _probe(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        probe = self.path / "probe"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, MAGIC)
            if self._sync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)

    def _close_segment(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = self._current = None

    # -- reading ---------------------------------------------------------------------------
    async def read(self, after: int, limit: int) -> list[Record]:
        """Up to `limit` durable records numbered above `after`, in order."""
        if self._reader is None:
            raise StoreUnavailable("intake journal is not open")
        if after >= self._durable:
            return []
        cache = self._cache
        if cache and cache[0][0] <= after + 1:
            # Everything durable from the cache's first record on is in the cache, in order.
            start = after + 1 - cache[0][0]
            return [cache[i] for i in range(start, min(start + limit, len(cache)))]
        try:
            return await self._on(self._reader, self._read_disk, after, limit, self._durable)
        except OSError as exc:
            raise StoreUnavailable(f"intake journal read failed: {exc}") from exc

    def _read_disk(self, after: int, limit: int, durable: int) -> list[Record]:
        found: list[Record] = []
        segments = list(self._segments)
        cursor = self._cursor
        if (
            cursor is None
            or cursor.seq != after
            or cursor.segment.last <= after  # read to its end: go on from the next one
            or cursor.segment not in segments
        ):
            cursor = None
        for segment in segments:
            if segment.last <= after or (cursor is not None and segment is not cursor.segment):
                continue
            offset = cursor.offset if cursor is not None else len(MAGIC)
            cursor = None
            with open(segment.path, "rb") as stream:
                stream.seek(offset)
                for end, record in records(stream):
                    if record[0] > durable or len(found) == limit:
                        break
                    if record[0] > after:
                        found.append(record)
                        self._cursor = _Cursor(segment, end, record[0])
            if len(found) == limit:
                break
        return found

    async def count(self, after: int) -> int:
        """Durable records numbered above `after`. Within a segment the numbers run without
        a gap (a failed write ends its segment), so this is arithmetic, not a read."""
        if self._reader is None:
            raise StoreUnavailable("intake journal is not open")
        return sum(max(0, s.last - max(after, s.first - 1)) for s in self._segments)

    async def forget(self, through: int) -> None:
        """Delete the segments the decision record has digested entirely."""
        done = [s for s in self._segments if s.last <= through and s is not self._current]
        if not done or self._reader is None:
            return
        self._segments = [s for s in self._segments if s not in done]
        if self._cursor is not None and self._cursor.segment in done:
            self._cursor = None
        kept = await self._on(self._reader, _unlink, done)
        if kept:  # only space is at stake: try again at the next call
            self._segments = sorted(kept + self._segments, key=lambda s: s.first)

    def _scan(self, digested_through: int) -> list[_Segment]:
        """Reader thread, at open: the segments still holding undigested records."""
        if not self.path.exists():
            return []
        kept: list[_Segment] = []
        for path in sorted(self.path.glob(f"*{_SUFFIX}")):
            try:
                first = int(path.stem)
            except ValueError:
                continue  # not ours
            segment = _Segment(path, first, first - 1)
            with open(path, "rb") as stream:
                if stream.read(len(MAGIC)) == MAGIC:
                    for _, (seq, _, _) in records(stream):
                        if segment.last < segment.first:
                            segment.first = seq  # the records, not the name, say where it starts
                        segment.last = seq
            if segment.last < segment.first or segment.last <= digested_through:
                path.unlink()  # empty, cut off before its first record, or digested
            else:
                kept.append(segment)
        return kept

    async def _on(
        self, pool: ThreadPoolExecutor | None, fn: Callable[..., _T], *args: object
    ) -> _T:
        if pool is None:
            raise StoreUnavailable("intake journal is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


def _micros(moment: datetime) -> int:
    return round(moment.timestamp() * 1e6)


def _unlink(segments: list[_Segment]) -> list[_Segment]:
    """Delete the segments' files; the segments that could not be."""
    kept = []
    for segment in segments:
        try:
            segment.path.unlink(missing_ok=True)
        except OSError:
            kept.append(segment)
    return kept


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
