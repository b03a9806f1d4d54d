"""``twistd mqttauth --data-dir`` stops at start-up on a store it cannot use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mqttauth.store.sqlite import DATABASE_NAME
from tests.support.process import run_twistd, start_broker

pytestmark = pytest.mark.e2e


def run_on(data_dir: Path) -> tuple[int, str]:
    result = run_twistd(
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--authenticator",
        "anonymous",
        "--data-dir",
        str(data_dir),
    )
    return result.returncode, result.stdout


def test_second_broker_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with start_broker(
        "--authenticator", "anonymous", "--data-dir", str(data_dir)
    ) as first:
        status, output = run_on(data_dir)
        assert status != 0
        assert f"locked by another mqttauth broker (pid {first.pid})" in output


def test_corrupt_store_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    garbage = b"this is no database\n" * 100
    (data_dir / DATABASE_NAME).write_bytes(garbage)
    status, output = run_on(data_dir)
    assert status != 0
    assert "is corrupt: it is not an SQLite database" in output
    assert (data_dir / DATABASE_NAME).read_bytes() == garbage


def test_newer_store_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with start_broker("--authenticator", "anonymous", "--data-dir", str(data_dir)):
        pass
    connection = sqlite3.connect(data_dir / DATABASE_NAME)
    connection.execute("PRAGMA user_version = 7")
    connection.close()
    status, output = run_on(data_dir)
    assert status != 0
    assert "has schema version 7, newer than version 1" in output
