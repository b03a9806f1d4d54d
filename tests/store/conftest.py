from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from mqttauth.store.sqlite import SQLiteStore


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_sqlite_store(data_dir: Path) -> Iterator[Callable[..., SQLiteStore]]:
    """Build SQLite stores on ``data_dir`` and close any left open afterwards."""
    stores: list[SQLiteStore] = []

    def make(**options: Any) -> SQLiteStore:
        store = SQLiteStore(str(data_dir), reactor, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        try:
            pytest_twisted.blockon(store.close())
        except Exception:
            pass
