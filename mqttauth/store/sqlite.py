"""The durable session store: SQLite in WAL mode, written in groups.

Threads.  Every public method runs on the reactor thread.  A mutation only
records a row in the current *group* (a few dict operations, no I/O).  The
group is handed to one writer thread when ``commit_interval`` seconds have
passed since its first mutation, or as soon as it holds ``max_group_size``
mutations, whichever comes first.  The writer applies all groups waiting
for it in one transaction, then fires their :meth:`SQLiteStore.commit`
Deferreds on the reactor thread.  An acknowledgement that waits on
``commit()`` therefore waits at most ``commit_interval`` plus the time to
write its group and the groups queued ahead of it: about 2 to 5 ms with the
defaults on a local disk.  The reactor thread touches SQLite only in
:meth:`SQLiteStore.load`, at start-up.

Durability.  With ``synchronous="normal"`` (the default) a committed group
survives a crash of the process, ``kill -9`` included, because SQLite has
written it to the WAL file; it may be lost if the machine loses power
before the next checkpoint.  ``synchronous="full"`` also syncs the WAL to
disk at every group commit, which survives a power loss and costs one
fsync per group.

Collapsing.  Within one group only the last change to a row is written: a
session put twice is written once, and a message put and then deleted in
the same group is not written at all when its key is higher than every key
stored for that session (the row cannot exist yet).

Failure.  When a write fails the transaction is rolled back, the error is
logged, and that commit and every later one fail with :class:`StoreError`:
the broker can no longer promise that an acknowledged message is stored,
and the store stays failed until the broker is restarted.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from zope.interface import implementer

from .encoding import decode_properties, decode_value, encode_properties, encode_value
from .interfaces import ISessionStore, StoreError
from .lock import DataDirLock
from .records import (
    MessageRecord,
    RetainedRecord,
    SessionRecord,
    StoredState,
    SubscriptionRecord,
    WillRecord,
)
from .schema import open_database

#: The database file's name inside the data directory.
DATABASE_NAME = "mqttauth.sqlite3"

Row = tuple[Any, ...]


class _Reactor(Protocol):
    def callLater(  # noqa: N802
        self, delay: float, callable: Callable[..., Any], *args: Any
    ) -> IDelayedCall: ...

    def callFromThread(  # noqa: N802
        self, callable: Callable[..., Any], *args: Any
    ) -> None: ...


class _Group:
    """The mutations recorded since the last hand-over, last change per row."""

    __slots__ = (
        "cleared",
        "sessions",
        "messages",
        "fresh",
        "inbound",
        "retained",
        "wills",
        "size",
        "waiters",
    )

    def __init__(self) -> None:
        #: Client ids whose session is deleted, with everything it owns,
        #: before the other changes of the group are applied.
        self.cleared: set[str] = set()
        #: Client id to (session row, subscription rows).
        self.sessions: dict[str, tuple[Row, list[Row]]] = {}
        #: (client id, key) to the row to write, or None to delete it.
        self.messages: dict[tuple[str, int], Row | None] = {}
        #: Message keys whose row is not in the database yet.
        self.fresh: set[tuple[str, int]] = set()
        #: (client id, packet id) to True (insert) or False (delete).
        self.inbound: dict[tuple[str, int], bool] = {}
        self.retained: dict[str, Row | None] = {}
        self.wills: dict[str, Row | None] = {}
        #: Mutations recorded, collapsed ones included.
        self.size = 0
        self.waiters: list[Deferred[None]] = []


class _Barrier:
    """A marker the writer sets once every group queued before it is written."""

    def __init__(self) -> None:
        self.reached = threading.Event()


#: Marker that tells the writer to close the connection and end.
_STOP = object()

_CLEAR_SESSION = (
    "DELETE FROM sessions WHERE client_id = ?",
    "DELETE FROM subscriptions WHERE client_id = ?",
    "DELETE FROM messages WHERE client_id = ?",
    "DELETE FROM inbound WHERE client_id = ?",
    "DELETE FROM wills WHERE client_id = ?",
)
_PUT_SESSION = "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)"
_CLEAR_SUBSCRIPTIONS = "DELETE FROM subscriptions WHERE client_id = ?"
_PUT_SUBSCRIPTION = "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_PUT_MESSAGE = "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_DELETE_MESSAGE = "DELETE FROM messages WHERE client_id = ? AND key = ?"
_PUT_INBOUND = "INSERT OR IGNORE INTO inbound VALUES (?, ?)"
_DELETE_INBOUND = "DELETE FROM inbound WHERE client_id = ? AND packet_id = ?"
_PUT_RETAINED = "INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?)"
_DELETE_RETAINED = "DELETE FROM retained WHERE topic = ?"
_PUT_WILL = "INSERT OR REPLACE INTO wills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_DELETE_WILL = "DELETE FROM wills WHERE client_id = ?"


@implementer(ISessionStore)
class SQLiteStore:
    """Keep the broker's journal in ``mqttauth.sqlite3`` in a data directory.

    Nothing touches the disk until :meth:`load`, which takes the data
    directory's lock, checks and migrates the database, starts the writer
    thread and reads everything back.  Mutations before :meth:`load` or
    after :meth:`close` raise :class:`StoreError`.
    """

    durable = True
    _log = Logger()

    def __init__(
        self,
        data_dir: str | FilePath[str],
        reactor: _Reactor,
        *,
        commit_interval: float = 0.002,
        max_group_size: int = 1000,
        synchronous: str = "normal",
    ) -> None:
        """Configure a store in ``data_dir``; nothing is opened yet.

        ``commit_interval`` is the longest time, in seconds, a mutation
        waits before its group is handed to the writer; ``max_group_size``
        hands a group over early once it holds that many mutations.
        ``synchronous`` is ``"normal"`` (survives a process crash) or
        ``"full"`` (also survives a power loss).
        """
        if commit_interval < 0:
            raise ValueError(
                f"commit_interval must be 0 or more, not {commit_interval!r}"
            )
        if max_group_size < 1:
            raise ValueError(
                f"max_group_size must be 1 or more, not {max_group_size!r}"
            )
        if synchronous.lower() not in ("normal", "full"):
            raise ValueError(
                f"synchronous must be 'normal' or 'full', not {synchronous!r}"
            )
        path = data_dir.path if isinstance(data_dir, FilePath) else data_dir
        self.data_dir = os.path.abspath(path)
        self.path = os.path.join(self.data_dir, DATABASE_NAME)
        self._reactor = reactor
        self._commit_interval = commit_interval
        self._max_group_size = max_group_size
        self._synchronous = synchronous.upper()
        self._lock = DataDirLock(self.data_dir)
        self._connection: sqlite3.Connection | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._group = _Group()
        self._timer: IDelayedCall | None = None
        #: Groups handed to the writer and not yet reported back, oldest first.
        self._in_flight: list[_Group] = []
        #: Per client id, the highest message key that may be in the database.
        self._max_keys: dict[str, int] = {}
        self._failure: StoreError | None = None
        self._close_waiters: list[Deferred[None]] | None = None
        self._closed = False
        #: Transactions the writer committed, and the mutations they held.
        self.groups_written = 0
        self.mutations_written = 0

    # Opening and reading

    def load(self) -> StoredState:
        """Open the store on first use, then return everything it holds.

        Raises :class:`StoreError` when the data directory is locked by
        another broker, or the database is corrupt, foreign or of a newer
        schema version; the message names which, and nothing on disk is
        changed.  On a store already open, waits for pending groups to be
        written first (this blocks the calling thread, as start-up may).
        """
        if self._closed or self._close_waiters is not None:
            raise StoreError(f"The session store {self.path} is closed.")
        if self._connection is None:
            self._open()
        else:
            self._wait_for_writer()
        if self._failure is not None:
            raise self._failure
        assert self._connection is not None
        try:
            state = _read_state(self._connection)
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"Reading the session store {self.path} failed: {error}. The "
                "file may be corrupt; restore it from a backup, or move it out "
                "of the data directory to start with an empty store."
            ) from error
        self._max_keys = {
            client_id: messages[-1].key
            for client_id, messages in state.messages.items()
            if messages
        }
        return state

    def _open(self) -> None:
        if os.path.exists(self.data_dir) and not os.path.isdir(self.data_dir):
            raise StoreError(f"The data directory {self.data_dir} is not a directory.")
        try:
            os.makedirs(self.data_dir, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"Cannot create the data directory {self.data_dir}: {error.strerror}."
            ) from error
        self._lock.acquire()
        try:
            self._connection = open_database(self.path, self._synchronous)
        except BaseException:
            self._lock.release()
            raise
        self._writer = threading.Thread(
            target=self._run_writer, name="mqttauth-store-writer", daemon=True
        )
        self._writer.start()
        self._log.info(
            "Opened the session store {path} (commit interval {interval} s, "
            "synchronous {synchronous})",
            path=self.path,
            interval=self._commit_interval,
            synchronous=self._synchronous,
        )

    def _wait_for_writer(self) -> None:
        self._hand_over()
        barrier = _Barrier()
        self._queue.put(barrier)
        barrier.reached.wait()

    # Mutations (reactor thread)

    def _recording(self) -> _Group:
        """Return the group that the next mutation goes into, counting it."""
        if self._connection is None or self._close_waiters is not None:
            raise StoreError(
                f"The session store {self.path} is not open: call load() first, "
                "and make no change after close()."
            )
        group = self._group
        if group.size >= self._max_group_size:
            self._hand_over()
            group = self._group
        group.size += 1
        if self._timer is None:
            self._timer = self._reactor.callLater(
                self._commit_interval, self._hand_over
            )
        if group.size == self._max_group_size:
            # Handed over at the end of this reactor turn, because the
            # caller has yet to record its row in the group.
            self._reactor.callLater(0, self._hand_over_full, group)
        return group

    def put_session(self, record: SessionRecord) -> None:
        group = self._recording()
        client_id = record.client_id
        session = (
            client_id,
            record.protocol_level,
            record.expiry_interval,
            record.disconnected_at,
        )
        subscriptions = [
            (
                client_id,
                topic_filter,
                position,
                subscription.qos,
                int(subscription.no_local),
                int(subscription.retain_as_published),
                subscription.retain_handling,
                subscription.subscription_identifier,
            )
            for position, (topic_filter, subscription) in enumerate(
                record.subscriptions.items()
            )
        ]
        group.sessions[client_id] = (session, subscriptions)

    def delete_session(self, client_id: str) -> None:
        group = self._recording()
        group.cleared.add(client_id)
        group.sessions.pop(client_id, None)
        group.wills.pop(client_id, None)
        for key in [key for key in group.messages if key[0] == client_id]:
            del group.messages[key]
            group.fresh.discard(key)
        for key in [key for key in group.inbound if key[0] == client_id]:
            del group.inbound[key]
        # The deletion is written before any later row of this client id,
        # so from now on every key is new to the database.
        self._max_keys.pop(client_id, None)

    def put_message(self, client_id: str, record: MessageRecord) -> None:
        group = self._recording()
        key = (client_id, record.key)
        if key not in group.messages:
            highest = self._max_keys.get(client_id)
            if highest is None or record.key > highest:
                group.fresh.add(key)
                self._max_keys[client_id] = record.key
        payload = record.payload
        group.messages[key] = (
            client_id,
            record.key,
            record.topic,
            payload if type(payload) is bytes else bytes(payload),
            record.qos,
            int(record.retain),
            encode_properties(record.properties),
            record.expires_at,
            record.packet_id,
            record.state,
        )

    def delete_message(self, client_id: str, key: int) -> None:
        group = self._recording()
        message_key = (client_id, key)
        if message_key in group.fresh:
            group.fresh.discard(message_key)
            del group.messages[message_key]
        else:
            group.messages[message_key] = None

    def put_inbound(self, client_id: str, packet_id: int) -> None:
        self._recording().inbound[(client_id, packet_id)] = True

    def delete_inbound(self, client_id: str, packet_id: int) -> None:
        self._recording().inbound[(client_id, packet_id)] = False

    def put_retained(self, record: RetainedRecord) -> None:
        group = self._recording()
        payload = record.payload
        group.retained[record.topic] = (
            record.topic,
            payload if type(payload) is bytes else bytes(payload),
            record.qos,
            encode_properties(record.properties),
            record.expires_at,
        )

    def delete_retained(self, topic: str) -> None:
        self._recording().retained[topic] = None

    def put_will(self, record: WillRecord) -> None:
        group = self._recording()
        group.wills[record.client_id] = (
            record.client_id,
            record.topic,
            bytes(record.payload),
            record.qos,
            int(record.retain),
            encode_properties(record.properties),
            record.publish_at,
            record.principal,
            encode_value(record.identity_attributes),
        )

    def delete_will(self, client_id: str) -> None:
        self._recording().wills[client_id] = None

    # Commit and close (reactor thread)

    def commit(self) -> Deferred[None]:
        """Return a Deferred that fires once every mutation so far is written.

        Fires at once when nothing is pending.  Fails with
        :class:`StoreError` when a write failed, now or earlier.
        """
        if self._failure is not None:
            return fail(self._failure)
        if self._group.size:
            group = self._group
        elif self._in_flight:
            group = self._in_flight[-1]
        else:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        group.waiters.append(waiter)
        return waiter

    def close(self) -> Deferred[None]:
        """Write what is pending, close the database and release the lock.

        The Deferred fires once the lock is released; it fails with
        :class:`StoreError` when the store could not write everything.
        """
        if self._close_waiters is not None:
            waiter: Deferred[None] = Deferred()
            self._close_waiters.append(waiter)
            return waiter
        if self._closed or self._connection is None:
            self._closed = True
            return succeed(None)
        self._hand_over()
        self._close_waiters = []
        waiter = Deferred()
        self._close_waiters.append(waiter)
        self._queue.put(_STOP)
        return waiter

    def _hand_over(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        group = self._group
        if not group.size:
            return
        self._group = _Group()
        self._in_flight.append(group)
        self._queue.put(group)

    def _hand_over_full(self, group: _Group) -> None:
        # Deferred to the end of the reactor turn, so the mutation that
        # filled the group returns first; skipped if the timer won the race.
        if group is self._group:
            self._hand_over()

    def _groups_written(self, groups: list[_Group], error: StoreError | None) -> None:
        del self._in_flight[: len(groups)]
        if error is not None and self._failure is None:
            self._failure = error
            self._log.error(
                "Writing to the session store {path} failed: {error}. Every "
                "commit fails from now on; fix the cause and restart the broker.",
                path=self.path,
                error=str(error.__cause__ or error),
            )
        if error is None:
            self.groups_written += 1
            self.mutations_written += sum(group.size for group in groups)
        for group in groups:
            for waiter in group.waiters:
                if error is None:
                    waiter.callback(None)
                else:
                    waiter.errback(error)

    def _writer_stopped(self) -> None:
        self._closed = True
        self._connection = None
        self._lock.release()
        waiters, self._close_waiters = self._close_waiters or [], None
        for waiter in waiters:
            if self._failure is None:
                waiter.callback(None)
            else:
                waiter.errback(self._failure)

    # The writer thread

    def _run_writer(self) -> None:
        connection = self._connection
        assert connection is not None
        failure: StoreError | None = None
        stop = False
        while not stop:
            item = self._queue.get()
            groups: list[_Group] = []
            markers: list[object] = []
            while True:
                if isinstance(item, _Group):
                    groups.append(item)
                else:
                    markers.append(item)
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if groups:
                if failure is None:
                    failure = self._write(connection, groups)
                self._reactor.callFromThread(self._groups_written, groups, failure)
            for marker in markers:
                if isinstance(marker, _Barrier):
                    marker.reached.set()
                else:
                    stop = True
        try:
            connection.close()
        except sqlite3.Error as error:
            self._log.warn(
                "Closing {path} failed: {error}", path=self.path, error=str(error)
            )
        self._reactor.callFromThread(self._writer_stopped)

    def _write(
        self, connection: sqlite3.Connection, groups: list[_Group]
    ) -> StoreError | None:
        """Apply ``groups`` in one transaction; return the error if it failed."""
        try:
            connection.execute("BEGIN IMMEDIATE")
            for group in groups:
                _apply(connection, group)
            connection.execute("COMMIT")
        except Exception as error:
            # Not only sqlite3.Error: binding an int too large for SQLite
            # raises OverflowError, and the writer thread must not die.
            try:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            store_error = StoreError(
                f"Writing to the session store {self.path} failed: {error}. "
                "Acknowledgements stop until the cause (for example a full "
                "disk) is fixed and the broker restarted."
            )
            store_error.__cause__ = error
            return store_error
        return None


def _apply(connection: sqlite3.Connection, group: _Group) -> None:
    """Apply one group: its session deletions first, then the other rows."""
    if group.cleared:
        client_ids = [(client_id,) for client_id in group.cleared]
        for statement in _CLEAR_SESSION:
            connection.executemany(statement, client_ids)
    if group.sessions:
        connection.executemany(
            _PUT_SESSION, [row for row, _ in group.sessions.values()]
        )
        connection.executemany(
            _CLEAR_SUBSCRIPTIONS, [(client_id,) for client_id in group.sessions]
        )
        connection.executemany(
            _PUT_SUBSCRIPTION,
            [row for _, rows in group.sessions.values() for row in rows],
        )
    _put_and_delete(connection, group.messages, _PUT_MESSAGE, _DELETE_MESSAGE)
    if group.inbound:
        connection.executemany(
            _PUT_INBOUND, [k for k, put in group.inbound.items() if put]
        )
        connection.executemany(
            _DELETE_INBOUND, [k for k, put in group.inbound.items() if not put]
        )
    _put_and_delete(
        connection, _single_keys(group.retained), _PUT_RETAINED, _DELETE_RETAINED
    )
    _put_and_delete(connection, _single_keys(group.wills), _PUT_WILL, _DELETE_WILL)


def _single_keys(rows: dict[str, Row | None]) -> dict[tuple[str], Row | None]:
    return {(key,): row for key, row in rows.items()}


def _put_and_delete(
    connection: sqlite3.Connection,
    rows: dict[Any, Row | None],
    put: str,
    delete: str,
) -> None:
    if not rows:
        return
    connection.executemany(put, [row for row in rows.values() if row is not None])
    connection.executemany(delete, [key for key, row in rows.items() if row is None])


def _read_state(connection: sqlite3.Connection) -> StoredState:
    state = StoredState()
    for client_id, level, expiry, disconnected_at in connection.execute(
        "SELECT client_id, protocol_level, expiry_interval, disconnected_at FROM sessions"
    ):
        state.sessions[client_id] = SessionRecord(
            client_id, level, expiry, disconnected_at
        )
    for row in connection.execute(
        "SELECT client_id, topic_filter, qos, no_local, retain_as_published,"
        " retain_handling, subscription_identifier FROM subscriptions"
        " ORDER BY client_id, position"
    ):
        session = state.sessions.get(row[0])
        if session is not None:
            session.subscriptions[row[1]] = SubscriptionRecord(
                row[1], row[2], bool(row[3]), bool(row[4]), row[5], row[6]
            )
    for row in connection.execute(
        "SELECT client_id, key, topic, payload, qos, retain, properties, expires_at,"
        " packet_id, state FROM messages ORDER BY client_id, key"
    ):
        state.messages.setdefault(row[0], []).append(
            MessageRecord(
                key=row[1],
                topic=row[2],
                payload=row[3],
                qos=row[4],
                retain=bool(row[5]),
                properties=decode_properties(row[6]),
                expires_at=row[7],
                packet_id=row[8],
                state=row[9],
            )
        )
    for client_id, packet_id in connection.execute(
        "SELECT client_id, packet_id FROM inbound"
    ):
        state.inbound.setdefault(client_id, set()).add(packet_id)
    for topic, payload, qos, properties, expires_at in connection.execute(
        "SELECT topic, payload, qos, properties, expires_at FROM retained"
    ):
        state.retained[topic] = RetainedRecord(
            topic, payload, qos, decode_properties(properties), expires_at
        )
    for row in connection.execute(
        "SELECT client_id, topic, payload, qos, retain, properties, publish_at,"
        " principal, identity_attributes FROM wills"
    ):
        state.wills[row[0]] = WillRecord(
            client_id=row[0],
            topic=row[1],
            payload=row[2],
            qos=row[3],
            retain=bool(row[4]),
            properties=decode_properties(row[5]),
            publish_at=row[6],
            principal=row[7],
            identity_attributes=decode_value(row[8]),
        )
    return state
