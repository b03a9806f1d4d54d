"""The SQLite schema of the session store, its version, checks and migrations.

The schema version is ``PRAGMA user_version``; ``PRAGMA application_id``
marks the file as an mqttauth store.  ``MIGRATIONS[n]`` turns a version
``n`` database into version ``n + 1``; version 0 is an empty file, so the
first step creates the schema.  Each step runs in its own transaction
together with the version bump, so a failed step leaves the file at the
version it had.

:func:`open_database` checks a file before it writes anything: a file that
is not an SQLite database, one that belongs to another application, one
that fails ``PRAGMA quick_check``, or one of a newer schema version raises
:class:`StoreError` and is left exactly as it was.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence

from .interfaces import StoreError

#: ``PRAGMA application_id`` of an mqttauth store: "mqtt" in ASCII.
APPLICATION_ID = 0x6D717474

_SQLITE_HEADER = b"SQLite format 3\x00"

# Messages are inserted and deleted at the message rate, so their table is
# WITHOUT ROWID: one b-tree keyed by (client_id, key), not a table plus an
# index that both change on every row.
_SCHEMA_1 = (
    """
    CREATE TABLE sessions (
        client_id TEXT PRIMARY KEY,
        protocol_level INTEGER NOT NULL,
        expiry_interval INTEGER NOT NULL,
        disconnected_at REAL
    )
    """,
    """
    CREATE TABLE subscriptions (
        client_id TEXT NOT NULL,
        topic_filter TEXT NOT NULL,
        position INTEGER NOT NULL,
        qos INTEGER NOT NULL,
        no_local INTEGER NOT NULL,
        retain_as_published INTEGER NOT NULL,
        retain_handling INTEGER NOT NULL,
        subscription_identifier INTEGER,
        PRIMARY KEY (client_id, topic_filter)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE messages (
        client_id TEXT NOT NULL,
        key INTEGER NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        properties BLOB NOT NULL,
        expires_at REAL,
        packet_id INTEGER,
        state TEXT NOT NULL,
        PRIMARY KEY (client_id, key)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE inbound (
        client_id TEXT NOT NULL,
        packet_id INTEGER NOT NULL,
        PRIMARY KEY (client_id, packet_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE retained (
        topic TEXT PRIMARY KEY,
        payload BLOB NOT NULL,
        qos INTEGER NOT NULL,
        properties BLOB NOT NULL,
        expires_at REAL
    )
    """,
    """
    CREATE TABLE wills (
        client_id TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        properties BLOB NOT NULL,
        publish_at REAL NOT NULL,
        principal TEXT NOT NULL,
        identity_attributes BLOB NOT NULL
    )
    """,
)


def _create_schema_1(connection: sqlite3.Connection) -> None:
    for statement in _SCHEMA_1:
        connection.execute(statement)
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")


Migration = Callable[[sqlite3.Connection], None]

#: ``MIGRATIONS[n]`` upgrades a version ``n`` database to version ``n + 1``.
MIGRATIONS: tuple[Migration, ...] = (_create_schema_1,)

#: The schema version this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)

_WHAT_TO_DO_CORRUPT = (
    "mqttauth changed nothing. Restore the file from a backup, or move it "
    "(with any -wal and -shm files beside it) out of the data directory to "
    "start with an empty store; the sessions, queued messages and retained "
    "messages in it are then lost."
)


def open_database(
    path: str,
    synchronous: str = "NORMAL",
    migrations: Sequence[Migration] = MIGRATIONS,
) -> sqlite3.Connection:
    """Open, check and migrate the store at ``path``; create it if missing.

    Returns a connection in autocommit mode (transactions are explicit), in
    WAL journal mode, usable from any one thread at a time.  Raises
    :class:`StoreError` naming the problem and the fix when the file is not
    an SQLite database, is corrupt, belongs to another application, or has
    a schema version newer than ``len(migrations)``.
    """
    _check_header(path)
    try:
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=64
        )
    except sqlite3.Error as error:
        raise StoreError(f"Cannot open the session store {path}: {error}.") from error
    try:
        _check_contents(connection, path, len(migrations))
        _set_journal_mode(connection, path, synchronous)
        _migrate(connection, path, migrations)
    except BaseException:
        connection.close()
        raise
    return connection


def _check_header(path: str) -> None:
    try:
        with open(path, "rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as error:
        raise StoreError(
            f"Cannot read the session store {path}: {error.strerror}."
        ) from error
    if header and header != _SQLITE_HEADER:
        raise StoreError(
            f"The session store {path} is corrupt: it is not an SQLite "
            f"database. {_WHAT_TO_DO_CORRUPT}"
        )


def _check_contents(connection: sqlite3.Connection, path: str, supported: int) -> None:
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise StoreError(
            f"The session store {path} is corrupt: {error}. {_WHAT_TO_DO_CORRUPT}"
        ) from error
    if application_id != APPLICATION_ID and (application_id or version or tables):
        raise StoreError(
            f"The file {path} is an SQLite database but not an mqttauth session "
            "store. mqttauth changed nothing. Move it out of the data directory, "
            "or choose another --data-dir."
        )
    if version > supported:
        raise StoreError(
            f"The session store {path} has schema version {version}, newer than "
            f"version {supported}, the newest this mqttauth can read: a newer "
            "mqttauth wrote it. Run that newer version, or restore a backup made "
            "by this one. mqttauth changed nothing."
        )
    try:
        problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as error:
        problems = [str(error)]
    if problems != ["ok"]:
        detail = "; ".join(problems[:3])
        raise StoreError(
            f"The session store {path} is corrupt (integrity check: {detail}). "
            f"{_WHAT_TO_DO_CORRUPT}"
        )


def _set_journal_mode(
    connection: sqlite3.Connection, path: str, synchronous: str
) -> None:
    try:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        connection.execute(f"PRAGMA synchronous = {synchronous}")
    except sqlite3.Error as error:
        raise StoreError(
            f"Cannot switch the session store {path} to WAL mode: {error}."
        ) from error
    if mode != "wal":
        raise StoreError(
            f"The session store {path} stays in journal mode {mode!r}, not WAL; "
            "the file system of the data directory may not support it."
        )


def _migrate(
    connection: sqlite3.Connection, path: str, migrations: Sequence[Migration]
) -> None:
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == len(migrations):
        return
    if version > 0:
        _back_up(connection, f"{path}.v{version}.bak")
    for step in range(version, len(migrations)):
        try:
            connection.execute("BEGIN IMMEDIATE")
            migrations[step](connection)
            connection.execute(f"PRAGMA user_version = {step + 1}")
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise StoreError(
                f"Migrating the session store {path} from schema version {step} "
                f"to {step + 1} failed: {error}. The file is unchanged at version "
                f"{step}; report this, and run the previous mqttauth meanwhile."
            ) from error


def _back_up(connection: sqlite3.Connection, backup_path: str) -> None:
    """Copy the database to ``backup_path`` before a migration changes it."""
    if os.path.exists(backup_path):
        return
    try:
        target = sqlite3.connect(backup_path)
        try:
            connection.backup(target)
        finally:
            target.close()
    except sqlite3.Error as error:
        raise StoreError(
            f"Cannot back up the session store to {backup_path} before migrating "
            f"it: {error}. The store is unchanged; free disk space and retry."
        ) from error
