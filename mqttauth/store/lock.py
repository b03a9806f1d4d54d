"""An exclusive lock on a data directory, held for the life of a store.

The lock is a ``flock(2)`` on a lock file in the data directory.  The kernel
drops it when the process ends in any way, ``kill -9`` included, so a
crashed broker never leaves a stale lock behind.  ``flock`` locks belong to
the open file, so two stores in one process exclude each other too.
"""

from __future__ import annotations

import errno
import fcntl
import os

from .interfaces import StoreError

#: The lock file's name inside the data directory.
LOCK_NAME = "mqttauth.lock"


class DataDirLock:
    """An exclusive lock on ``data_dir``; the lock file records the holder's pid."""

    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises :class:`StoreError` when another broker holds it or the lock
        file cannot be opened.  The holder's lock file is left as it is.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(
                f"Cannot open the lock file {self.path}: {error.strerror}. "
                "Check that the data directory is writable by this user."
            ) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_pid(fd)
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StoreError(
                    f"Cannot lock {self.path}: {error.strerror}."
                ) from error
            raise StoreError(
                f"The data directory {os.path.dirname(self.path)} is locked by "
                f"another mqttauth broker{holder}. Stop that broker first, or "
                "give this one a different --data-dir. mqttauth changed nothing."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock; the lock file stays, so a later holder reuses it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_pid(fd: int) -> str:
    """Return `` (pid N)`` from the lock file, or an empty string."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {text})" if text.isdigit() else ""
