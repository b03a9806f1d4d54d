"""Checks and migrations of the SQLite schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from mqttauth.store.interfaces import StoreError
from mqttauth.store.records import RetainedRecord
from mqttauth.store.schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    open_database,
)
from mqttauth.store.sqlite import DATABASE_NAME, SQLiteStore


def pragma(path: Path, name: str) -> Any:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        connection.close()


def add_origin_column(connection: sqlite3.Connection) -> None:
    connection.execute("ALTER TABLE retained ADD COLUMN origin TEXT DEFAULT 'old'")


def broken_step(connection: sqlite3.Connection) -> None:
    connection.execute("ALTER TABLE retained ADD COLUMN origin TEXT")
    connection.execute("ALTER TABLE no_such_table ADD COLUMN x TEXT")


@pytest_twisted.inlineCallbacks
def version_1_store(data_dir: Path) -> Generator[Any, Any, Path]:
    from twisted.internet import reactor

    store = SQLiteStore(str(data_dir), reactor)
    store.load()
    store.put_retained(RetainedRecord("r", b"kept", 1))
    yield store.close()
    return data_dir / DATABASE_NAME


def test_new_file_gets_current_version(tmp_path: Path) -> None:
    open_database(str(tmp_path / "new.sqlite3")).close()
    assert pragma(tmp_path / "new.sqlite3", "user_version") == SCHEMA_VERSION


def test_new_file_gets_application_id(tmp_path: Path) -> None:
    open_database(str(tmp_path / "new.sqlite3")).close()
    assert pragma(tmp_path / "new.sqlite3", "application_id") == APPLICATION_ID


def test_empty_file_is_version_0(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.write_bytes(b"")
    open_database(str(path)).close()
    assert pragma(path, "user_version") == SCHEMA_VERSION


@pytest_twisted.inlineCallbacks
def test_migration_keeps_rows(data_dir: Path) -> Generator:
    path = yield version_1_store(data_dir)
    connection = open_database(str(path), migrations=(*MIGRATIONS, add_origin_column))
    rows = connection.execute("SELECT topic, payload, origin FROM retained").fetchall()
    connection.close()
    assert rows == [("r", b"kept", "old")]
    assert pragma(path, "user_version") == 2


@pytest_twisted.inlineCallbacks
def test_migration_backs_up_first(data_dir: Path) -> Generator:
    path = yield version_1_store(data_dir)
    open_database(str(path), migrations=(*MIGRATIONS, add_origin_column)).close()
    backup = data_dir / f"{DATABASE_NAME}.v1.bak"
    assert pragma(backup, "user_version") == 1


@pytest_twisted.inlineCallbacks
def test_failed_migration_keeps_version(data_dir: Path) -> Generator:
    path = yield version_1_store(data_dir)
    with pytest.raises(StoreError, match="from schema version 1 to 2 failed"):
        open_database(str(path), migrations=(*MIGRATIONS, broken_step))
    assert pragma(path, "user_version") == 1
    connection = sqlite3.connect(path)
    columns = [row[1] for row in connection.execute("PRAGMA table_info(retained)")]
    connection.close()
    assert "origin" not in columns
