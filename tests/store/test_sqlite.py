"""The SQLite store: durability, group commit, failures and refusals."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater

from mqttauth.mqtt.constants import PropertyId
from mqttauth.store import open_store
from mqttauth.store.interfaces import StoreError
from mqttauth.store.memory import MemoryStore
from mqttauth.store.records import (
    SENT,
    MessageRecord,
    RetainedRecord,
    SessionRecord,
    SubscriptionRecord,
    WillRecord,
)
from mqttauth.store.sqlite import DATABASE_NAME, SQLiteStore

MakeStore = Callable[..., SQLiteStore]


def message(key: int, **fields: Any) -> MessageRecord:
    values: dict[str, Any] = {"topic": "t", "payload": str(key).encode(), "qos": 1}
    values.update(fields)
    return MessageRecord(key=key, **values)


def query(path: str, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` on a connection of its own, beside the store's."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def execute(path: str, sql: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(sql)
    finally:
        connection.close()


def snapshot(directory: Path) -> dict[str, bytes]:
    """Return every file in ``directory`` (but the lock file) with its bytes."""
    return {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if path.name != "mqttauth.lock"
    }


@pytest_twisted.inlineCallbacks
def populated(make_store: MakeStore) -> Generator[Any, Any, SQLiteStore]:
    """Return a closed store on disk with one row of every kind."""
    store = make_store()
    store.load()
    store.put_session(SessionRecord("c", 5, 60, None, {"a": SubscriptionRecord("a")}))
    store.put_message("c", message(1))
    store.put_retained(RetainedRecord("r", b"retained", 1))
    yield store.commit()
    yield store.close()
    return store


# Durability and group commit


@pytest_twisted.inlineCallbacks
def test_reopen_keeps_everything(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store()
    store.load()
    store.put_session(
        SessionRecord("c", 5, 3600, 1700000000.5, {"a/#": SubscriptionRecord("a/#", 2)})
    )
    store.put_message("c", message(1, properties={PropertyId.CONTENT_TYPE: "x"}))
    store.put_message("c", message(2, qos=2, packet_id=3, state=SENT))
    store.put_inbound("c", 9)
    store.put_retained(RetainedRecord("r", b"retained", 1, {}, 1700000500.0))
    store.put_will(WillRecord("c", "w", b"bye", 1, True, {}, 1700000010.0, "p"))
    before = store.load()
    yield store.close()
    reopened = make_sqlite_store()
    assert reopened.load() == before


@pytest_twisted.inlineCallbacks
def test_random_changes_match_memory(make_sqlite_store: MakeStore) -> Generator:
    """Replay one seeded random sequence into both stores and compare."""
    rng = random.Random(6)
    memory = MemoryStore()
    store = make_sqlite_store(commit_interval=0, max_group_size=7)
    store.load()
    next_key = {"a": 1, "b": 1}
    for step in range(1500):
        client_id = rng.choice("ab")
        action = rng.random()
        if action < 0.35:
            key = next_key[client_id]
            next_key[client_id] += 1
            change: tuple[str, tuple[Any, ...]] = (
                "put_message",
                (client_id, message(key, payload=rng.randbytes(8))),
            )
        elif action < 0.45:
            key = rng.randrange(1, next_key[client_id] + 1)
            change = (
                "put_message",
                (client_id, message(key, state=SENT, packet_id=key)),
            )
        elif action < 0.7:
            change = (
                "delete_message",
                (client_id, rng.randrange(1, next_key[client_id] + 1)),
            )
        elif action < 0.78:
            change = ("put_inbound", (client_id, rng.randrange(1, 5)))
        elif action < 0.84:
            change = ("delete_inbound", (client_id, rng.randrange(1, 5)))
        elif action < 0.9:
            change = ("put_session", (SessionRecord(client_id, 5, step),))
        elif action < 0.93:
            change = ("delete_session", (client_id,))
            if rng.random() < 0.5:
                next_key[client_id] = 1
        elif action < 0.97:
            change = (
                "put_retained",
                (RetainedRecord(f"r{rng.randrange(3)}", b"x", 1),),
            )
        else:
            change = ("delete_retained", (f"r{rng.randrange(3)}",))
        name, arguments = change
        getattr(memory, name)(*arguments)
        getattr(store, name)(*arguments)
        if rng.random() < 0.02:
            yield store.commit()
    yield store.close()
    assert make_sqlite_store().load() == memory.load()


@pytest_twisted.inlineCallbacks
def test_group_commit_fires_together(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store(commit_interval=60, max_group_size=6)
    store.load()
    waiters = []
    for key in range(1, 6):
        store.put_message("c", message(key))
        waiters.append(store.commit())
    assert not any(waiter.called for waiter in waiters)
    store.put_message("c", message(6))
    waiters.append(store.commit())
    results = yield gatherResults(waiters)
    assert results == [None] * 6
    assert store.groups_written == 1
    assert store.mutations_written == 6


@pytest_twisted.inlineCallbacks
def test_commit_after_interval(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store(commit_interval=0.01)
    store.load()
    store.put_message("c", message(1))
    yield store.commit()
    # Another connection sees the row, so it is in the database file.
    assert query(store.path, "SELECT key FROM messages") == [(1,)]


@pytest_twisted.inlineCallbacks
def test_commit_waits_for_group_in_flight(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store(commit_interval=0)
    store.load()
    # Another connection holds the write lock, so the writer waits in BEGIN.
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    store.put_message("c", message(1))
    yield deferLater(reactor, 0.05, lambda: None)
    waiter = store.commit()
    assert not waiter.called
    blocker.execute("COMMIT")
    blocker.close()
    yield waiter
    assert query(store.path, "SELECT key FROM messages") == [(1,)]


@pytest_twisted.inlineCallbacks
def test_put_then_delete_writes_nothing(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store(commit_interval=60)
    store.load()
    store.put_message("c", message(1))
    yield store.close()
    reopened = make_sqlite_store(commit_interval=60)
    reopened.load()
    reopened.put_message("c", message(2))
    reopened.delete_message("c", 2)
    reopened.delete_message("c", 1)
    yield reopened.close()
    # Key 1 was stored before, so its delete is written; key 2 never was.
    assert reopened.mutations_written == 3
    assert query(reopened.path, "SELECT count(*) FROM messages") == [(0,)]


@pytest_twisted.inlineCallbacks
def test_close_writes_pending(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store(commit_interval=60)
    store.load()
    store.put_retained(RetainedRecord("r", b"x", 0))
    yield store.close()
    assert query(store.path, "SELECT topic FROM retained") == [("r",)]


@pytest_twisted.inlineCallbacks
def test_change_after_close_raises(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store()
    store.load()
    yield store.close()
    with pytest.raises(StoreError, match="not open"):
        store.put_inbound("c", 1)


def test_change_before_load_raises(make_sqlite_store: MakeStore) -> None:
    with pytest.raises(StoreError, match="call load"):
        make_sqlite_store().delete_will("c")


def test_open_store_without_data_dir() -> None:
    assert isinstance(open_store(None, reactor), MemoryStore)


def test_open_store_with_data_dir(data_dir: Path) -> None:
    store = open_store(str(data_dir), reactor, commit_interval=0.5)
    assert isinstance(store, SQLiteStore)


def test_invalid_synchronous(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(str(data_dir), reactor, synchronous="off")


def test_synchronous_full(make_sqlite_store: MakeStore) -> None:
    store = make_sqlite_store(synchronous="full")
    store.load()
    assert store._connection is not None
    assert store._connection.execute("PRAGMA synchronous").fetchone() == (2,)


def test_wal_mode(make_sqlite_store: MakeStore) -> None:
    store = make_sqlite_store()
    store.load()
    assert query(store.path, "PRAGMA journal_mode") == [("wal",)]


# Write failures


@pytest_twisted.inlineCallbacks
def test_write_failure_fails_commit(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store()
    store.load()
    store.put_retained(RetainedRecord("kept", b"1", 0))
    yield store.commit()
    execute(
        store.path,
        "CREATE TRIGGER injected BEFORE INSERT ON retained"
        " BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
    )
    store.put_message("c", message(1))
    store.put_retained(RetainedRecord("lost", b"2", 0))
    with pytest.raises(StoreError, match="injected fault"):
        yield store.commit()


@pytest_twisted.inlineCallbacks
def test_write_failure_is_lasting(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store()
    store.load()
    store.put_message("c", message(2**70))
    with pytest.raises(StoreError):
        yield store.commit()
    store.put_message("c", message(1))
    with pytest.raises(StoreError):
        yield store.commit()
    with pytest.raises(StoreError):
        yield store.commit()
    with pytest.raises(StoreError):
        store.load()
    with pytest.raises(StoreError):
        yield store.close()


@pytest_twisted.inlineCallbacks
def test_write_failure_rolls_back_group(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store()
    store.load()
    execute(
        store.path,
        "CREATE TRIGGER injected BEFORE INSERT ON retained"
        " BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
    )
    store.put_message("c", message(1))
    store.put_retained(RetainedRecord("lost", b"2", 0))
    with pytest.raises(StoreError):
        yield store.commit()
    assert query(store.path, "SELECT count(*) FROM messages") == [(0,)]


@pytest_twisted.inlineCallbacks
def test_closed_connection_fails_commit(make_sqlite_store: MakeStore) -> Generator:
    store = make_sqlite_store(commit_interval=60)
    store.load()
    store.put_inbound("c", 1)
    # Deliberate fault: the connection goes away under the writer.
    assert store._connection is not None
    store._connection.close()
    waiter = store.commit()
    store._hand_over()
    with pytest.raises(StoreError, match="closed database"):
        yield waiter


# Refusals at start-up


def test_garbage_file_rejected(make_sqlite_store: MakeStore, data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / DATABASE_NAME).write_bytes(b"not a database at all\n" * 200)
    before = snapshot(data_dir)
    with pytest.raises(StoreError, match="corrupt: it is not an SQLite database"):
        make_sqlite_store().load()
    assert snapshot(data_dir) == before


@pytest_twisted.inlineCallbacks
def test_damaged_pages_rejected(
    make_sqlite_store: MakeStore, data_dir: Path
) -> Generator:
    yield populated(make_sqlite_store)
    path = data_dir / DATABASE_NAME
    content = bytearray(path.read_bytes())
    page_size = int.from_bytes(content[16:18], "big")
    content[page_size : 3 * page_size] = random.Random(1).randbytes(2 * page_size)
    path.write_bytes(bytes(content))
    before = snapshot(data_dir)
    with pytest.raises(StoreError, match="is corrupt"):
        make_sqlite_store().load()
    assert snapshot(data_dir) == before


def test_foreign_database_rejected(
    make_sqlite_store: MakeStore, data_dir: Path
) -> None:
    data_dir.mkdir()
    execute(str(data_dir / DATABASE_NAME), "CREATE TABLE photos (name TEXT)")
    before = snapshot(data_dir)
    with pytest.raises(StoreError, match="not an mqttauth session store"):
        make_sqlite_store().load()
    assert snapshot(data_dir) == before


@pytest_twisted.inlineCallbacks
def test_newer_schema_rejected(
    make_sqlite_store: MakeStore, data_dir: Path
) -> Generator:
    yield populated(make_sqlite_store)
    execute(str(data_dir / DATABASE_NAME), "PRAGMA user_version = 99")
    before = snapshot(data_dir)
    with pytest.raises(StoreError, match="schema version 99, newer than version 1"):
        make_sqlite_store().load()
    assert snapshot(data_dir) == before


def test_second_store_locked_out(make_sqlite_store: MakeStore, data_dir: Path) -> None:
    make_sqlite_store().load()
    before = snapshot(data_dir)
    with pytest.raises(
        StoreError, match=f"locked by another mqttauth broker \\(pid {os.getpid()}\\)"
    ):
        make_sqlite_store().load()
    assert snapshot(data_dir) == before


@pytest_twisted.inlineCallbacks
def test_lock_released_on_close(make_sqlite_store: MakeStore) -> Generator:
    first = make_sqlite_store()
    first.load()
    first.put_retained(RetainedRecord("r", b"x", 0))
    yield first.close()
    assert "r" in make_sqlite_store().load().retained


def test_lock_released_on_refusal(make_sqlite_store: MakeStore, data_dir: Path) -> None:
    data_dir.mkdir()
    corrupt = data_dir / DATABASE_NAME
    corrupt.write_bytes(b"garbage" * 100)
    with pytest.raises(StoreError):
        make_sqlite_store().load()
    corrupt.rename(data_dir / "moved-aside")
    assert make_sqlite_store().load().sessions == {}


def test_data_dir_is_file_rejected(
    make_sqlite_store: MakeStore, data_dir: Path
) -> None:
    data_dir.write_text("a file")
    with pytest.raises(StoreError, match="not a directory"):
        make_sqlite_store().load()


# Crash of the process


CRASHING_WRITER = textwrap.dedent(
    """
    import sys
    from twisted.internet import reactor
    from mqttauth.store.records import MessageRecord
    from mqttauth.store.sqlite import SQLiteStore

    store = SQLiteStore(sys.argv[1], reactor)
    store.load()

    # At most WINDOW commits wait at once, as a broker's publishers wait for
    # acknowledgements.  Without a bound the reactor thread records rows far
    # faster than the writer thread, which waits for the GIL, can write them.
    WINDOW = 8
    state = {"next_key": 1, "waiting": 0}

    def report(_, key):
        sys.stdout.write(f"{key}\\n")
        sys.stdout.flush()
        state["waiting"] -= 1
        fill()

    def fill():
        while state["waiting"] < WINDOW:
            key = state["next_key"]
            state["next_key"] += 1
            store.put_message("c", MessageRecord(key, "t", b"x" * 200, 1))
            if key % 3 == 0:
                store.delete_message("c", key - 1)
            state["waiting"] += 1
            store.commit().addCallback(report, key)

    reactor.callWhenRunning(fill)
    reactor.run()
    """
)


@pytest_twisted.inlineCallbacks
def test_kill_keeps_committed(
    make_sqlite_store: MakeStore, data_dir: Path
) -> Generator:
    writer = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert writer.stdout is not None
    committed = [int(writer.stdout.readline()) for _ in range(2000)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    stored = {record.key for record in make_sqlite_store().load().messages["c"]}
    # Keys 2, 5, 8, ... are deleted by the next key's put, so only the
    # others are sure to be stored; a deletion is sure once reported.
    kept = {key for key in committed if key % 3 != 2}
    deleted = {key - 1 for key in committed if key % 3 == 0}
    assert kept - stored == set()
    assert deleted & stored == set()
    yield None
