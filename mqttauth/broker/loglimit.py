"""A cap on how many log lines one kind of event may write per time window.

A client can cause some events at will, such as a refused CONNECT, so a
flood of them must not flood the log as well.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

log = Logger(namespace="mqttauth.broker")


class LogLimit:
    """Allow ``limit`` log lines per ``window`` seconds and count the rest.

    The first allowed line of a new window is preceded by one line with the
    number left out in the window before, if any.
    """

    __slots__ = (
        "clock",
        "limit",
        "window",
        "description",
        "_start",
        "_logged",
        "_skipped",
    )

    def __init__(
        self, clock: Any, description: str, limit: int = 100, window: float = 10.0
    ) -> None:
        """Count the events that ``description`` names ("refused connections")."""
        self.clock = clock
        self.description = description
        self.limit = limit
        self.window = window
        self._start = float("-inf")
        self._logged = 0
        self._skipped = 0

    def allow(self) -> bool:
        """Return whether the caller may log one more line now."""
        now = self.clock.seconds()
        if now - self._start >= self.window:
            if self._skipped:
                log.info(
                    "{count} more {description} in {window:g} s were not logged",
                    count=self._skipped,
                    description=self.description,
                    window=self.window,
                )
            self._start = now
            self._logged = 0
            self._skipped = 0
        if self._logged >= self.limit:
            self._skipped += 1
            return False
        self._logged += 1
        return True
