"""The durable session store: SQLite in WAL mode, written in groups.

Threads.  Every public method runs on the reactor thread.  A mutation only
records a row in the current *group* (a few dict operations, no I/O).  The
group is handed to one writer thread ``commit_interval`` seconds after its
first mutation (by default 0: at the end of the current reactor turn), or
as soon as it contains ``max_group_size`` mutations, whichever comes first.
The writer applies every group waiting for it in one transaction, then
fires their :meth:`SQLiteStore.commit` Deferreds on the reactor thread.
While the writer is busy, groups queue up and are then written together,
so under load the transactions grow instead of falling behind.

An acknowledgement that waits on ``commit()`` therefore waits for the end
of the reactor turn plus ``commit_interval``, the write of the transaction
in progress, and the write of its own transaction.  The reactor thread
touches SQLite only in :meth:`SQLiteStore.load`, at start-up.

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

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from zope.interface import implementer

from .interfaces import ISessionStore, StoreError
from .lock import DataDirLock
from .records import (
    MessageRecord,
    RetainedRecord,
    SessionRecord,
    StoredState,
    WillRecord,
)
from .rows import Group, read_state
from .schema import open_database

#: The database file's name inside the data directory.
DATABASE_NAME = "mqttauth.sqlite3"


class _Reactor(Protocol):
    def callLater(  # noqa: N802
        self, delay: float, callable: Callable[..., Any], *args: Any
    ) -> DelayedCall: ...

    def callFromThread(  # noqa: N802
        self, callable: Callable[..., Any], *args: Any
    ) -> None: ...


class _Barrier:
    """A marker the writer sets once every group queued before it is written."""

    def __init__(self) -> None:
        self.reached = threading.Event()


#: Marker that makes the writer close the connection and end.
_STOP = object()


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
        commit_interval: float = 0.0,
        max_group_size: int = 1000,
        synchronous: str = "normal",
    ) -> None:
        """Configure a store in ``data_dir``; nothing is opened yet.

        ``commit_interval`` is how long, in seconds, a group collects
        mutations after its first one before it goes to the writer (0:
        until the end of the reactor turn); ``max_group_size`` hands a
        group over early once it contains that many mutations.
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
        self._group = Group()
        self._timer: DelayedCall | None = None
        #: Groups handed to the writer and not yet reported back, oldest first.
        self._in_flight: list[Group] = []
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
            state = read_state(self._connection)
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

    def _recording(self) -> Group:
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
        self._recording().put_session(record)

    def delete_session(self, client_id: str) -> None:
        self._recording().delete_session(client_id, self._max_keys)

    def put_message(self, client_id: str, record: MessageRecord) -> None:
        self._recording().put_message(client_id, record, self._max_keys)

    def delete_message(self, client_id: str, key: int) -> None:
        self._recording().delete_message(client_id, key)

    def put_inbound(self, client_id: str, packet_id: int) -> None:
        self._recording().inbound[(client_id, packet_id)] = True

    def delete_inbound(self, client_id: str, packet_id: int) -> None:
        self._recording().inbound[(client_id, packet_id)] = False

    def put_retained(self, record: RetainedRecord) -> None:
        self._recording().put_retained(record)

    def delete_retained(self, topic: str) -> None:
        self._recording().retained[topic] = None

    def put_will(self, record: WillRecord) -> None:
        self._recording().put_will(record)

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
        self._group = Group()
        self._in_flight.append(group)
        self._queue.put(group)

    def _hand_over_full(self, group: Group) -> None:
        # Deferred to the end of the reactor turn, so the mutation that
        # filled the group returns first; skipped if the timer won the race.
        if group is self._group:
            self._hand_over()

    def _groups_written(self, groups: list[Group], error: StoreError | None) -> None:
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
            groups: list[Group] = []
            markers: list[object] = []
            while True:
                if isinstance(item, Group):
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
        self, connection: sqlite3.Connection, groups: list[Group]
    ) -> StoreError | None:
        """Apply ``groups`` in one transaction; return the error if it failed."""
        try:
            connection.execute("BEGIN IMMEDIATE")
            for group in groups:
                group.apply(connection)
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
