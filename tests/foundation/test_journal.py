"""The intake journal's files: what survives a crash, a torn write and a lost directory."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediator.store import StoreUnavailable
from remediator.store.journal import MAGIC, Journal, Record

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
OpenJournal = Callable[..., Awaitable[Journal]]


def rows(first: int, n: int) -> list[tuple[datetime, bytes]]:
    return [
        (T0 + timedelta(seconds=i), f"body {i} ".encode() * 40) for i in range(first, first + n)
    ]


@pytest.fixture
async def open_journal(tmp_path: Path) -> AsyncIterator[OpenJournal]:
    opened: list[Journal] = []

    async def make(digested_through: int = 0, segment_bytes: int = 1024) -> Journal:
        journal = Journal(tmp_path / "j", synchronous="full", segment_bytes=segment_bytes)
        await journal.open(digested_through)
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        await journal.close()


async def read_all(journal: Journal, after: int = 0, slice_size: int = 3) -> list[Record]:
    found: list[Record] = []
    while batch := await journal.read(after, slice_size):
        found.extend(batch)
        after = batch[-1][0]
    return found


def segments(journal: Journal) -> list[str]:
    return sorted(p.name for p in journal.path.iterdir())


async def test_records_read_back_in_order_across_segments_from_memory_and_disk(
    open_journal: OpenJournal,
) -> None:
    journal = await open_journal()
    written = rows(0, 30)
    seqs: list[int] = []
    for start in range(0, 30, 4):
        seqs += await journal.append(written[start : start + 4])
    assert seqs == list(range(1, 31))
    assert len(segments(journal)) > 3  # 1 KiB segments: the batches were spread over several
    expected = [(seq, at, body) for seq, (at, body) in zip(seqs, written, strict=True)]
    assert await read_all(journal) == expected  # the in-memory tail
    await journal.close()

    reopened = await open_journal()  # nothing in memory: every read is from the files
    assert await read_all(reopened) == expected
    assert await read_all(reopened, after=17, slice_size=5) == expected[17:]
    assert await reopened.count(0) == 30 and await reopened.count(28) == 2
    assert await reopened.append(rows(30, 1)) == [31]  # numbering goes on


async def test_a_torn_tail_ends_its_segment_and_nothing_is_written_behind_it(
    open_journal: OpenJournal,
) -> None:
    journal = await open_journal(segment_bytes=1 << 20)
    await journal.append(rows(0, 5))
    await journal.close()
    (segment,) = journal.path.iterdir()
    data = segment.read_bytes()
    segment.write_bytes(data[:-100])  # a crash in the middle of the fifth record

    journal = await open_journal(segment_bytes=1 << 20)
    assert [seq for seq, _, _ in await read_all(journal)] == [1, 2, 3, 4]
    assert await journal.append(rows(5, 2)) == [5, 6]  # the torn record was never acknowledged
    assert len(segments(journal)) == 2  # a new segment, not an append behind the torn bytes
    await journal.close()
    journal = await open_journal(segment_bytes=1 << 20)
    assert [seq for seq, _, _ in await read_all(journal)] == [1, 2, 3, 4, 5, 6]


async def test_a_corrupted_record_is_not_returned(open_journal: OpenJournal) -> None:
    journal = await open_journal(segment_bytes=1 << 20)
    await journal.append(rows(0, 3))
    await journal.close()
    (segment,) = journal.path.iterdir()
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF  # one flipped bit in the last body: its CRC no longer matches
    segment.write_bytes(bytes(data))
    journal = await open_journal(segment_bytes=1 << 20)
    assert [seq for seq, _, _ in await read_all(journal)] == [1, 2]


async def test_digested_segments_are_deleted_and_numbering_never_goes_back(
    open_journal: OpenJournal,
) -> None:
    journal = await open_journal()
    for start in range(0, 20, 2):
        await journal.append(rows(start, 2))
    before = segments(journal)
    await journal.forget(12)
    after = segments(journal)
    assert len(after) < len(before)
    assert [seq for seq, _, _ in await read_all(journal, after=12)] == list(range(13, 21))
    await journal.close()

    # Digested through 20 elsewhere: at open, nothing is left to keep.
    journal = await open_journal(digested_through=20)
    assert segments(journal) == [] and await journal.count(20) == 0
    await journal.close()

    # The directory lost by hand: numbers start above what the decision record digested,
    # never again from 1, or new notifications would be taken for digested ones.
    for leftover in journal.path.iterdir():
        leftover.unlink()
    journal.path.rmdir()
    journal = await open_journal(digested_through=57)
    assert await journal.append(rows(0, 1)) == [58]


async def test_open_skips_foreign_files_and_drops_empty_segments(
    open_journal: OpenJournal, tmp_path: Path
) -> None:
    directory = tmp_path / "j"
    directory.mkdir()
    (directory / "notes.txt").write_text("not a segment")
    (directory / f"{7:020d}.seg").write_bytes(b"")  # created, then the crash
    (directory / f"{9:020d}.seg").write_bytes(MAGIC)  # the same, one step later
    journal = await open_journal()
    assert segments(journal) == ["notes.txt"]
    assert await journal.append(rows(0, 1)) == [1]


async def test_a_failed_write_is_an_error_and_the_next_one_starts_a_new_segment(
    open_journal: OpenJournal,
) -> None:
    journal = await open_journal(segment_bytes=1 << 20)
    await journal.append(rows(0, 2))
    read_only = os.open(os.devnull, os.O_RDONLY)
    assert journal._fd is not None
    os.dup2(read_only, journal._fd)  # the open segment refuses writes from now on
    os.close(read_only)
    with pytest.raises(StoreUnavailable, match="write failed"):
        await journal.append(rows(2, 1))
    # A readiness check and the next append, at once: the disk itself is fine.
    _, appended = await asyncio.gather(journal.ping(), journal.append(rows(3, 1)))
    assert appended == [4]  # 3 went to the failed write and is never reused
    assert len(segments(journal)) == 2
    assert [seq for seq, _, _ in await read_all(journal)] == [1, 2, 4]
    assert [await journal.count(after) for after in (0, 1, 2, 3, 4)] == [3, 2, 1, 1, 0]
    await journal.close()
    reopened = await open_journal(segment_bytes=1 << 20)
    assert [seq for seq, _, _ in await read_all(reopened)] == [1, 2, 4]
    assert await reopened.count(0) == 3
