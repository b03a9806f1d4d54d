"""Session and retained-message storage behind one interface."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.python.filepath import FilePath

from .interfaces import ISessionStore, StoreError
from .memory import MemoryStore

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

__all__ = ["ISessionStore", "MemoryStore", "StoreError", "open_store"]


def open_store(
    data_dir: str | FilePath[str] | None, reactor: Any, **options: Any
) -> MemoryStore | SQLiteStore:
    """Return the store for ``--data-dir``: SQLite in it, or memory without one.

    ``options`` go to :class:`mqttauth.store.sqlite.SQLiteStore`
    (``commit_interval``, ``max_group_size``, ``synchronous``).  Nothing is
    opened yet: the broker's call to ``load()`` opens the store and raises
    :class:`StoreError` when it cannot.
    """
    if data_dir is None or data_dir == "":
        return MemoryStore()
    from .sqlite import SQLiteStore

    return SQLiteStore(data_dir, reactor, **options)
