"""Fixtures of the broker tests: an in-process broker on a loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted

from tests.support.inprocess import RunningBroker, start_broker


@pytest.fixture
def make_broker() -> Iterator[Callable[..., RunningBroker]]:
    """Return a function that starts a broker; every one started is stopped after."""
    started: list[RunningBroker] = []

    def make(**kwargs: Any) -> RunningBroker:
        running = start_broker(**kwargs)
        started.append(running)
        return running

    yield make
    for running in started:
        pytest_twisted.blockon(running.stop())


@pytest.fixture
def broker(make_broker: Callable[..., RunningBroker]) -> RunningBroker:
    """A broker with the default settings, everything allowed."""
    return make_broker()
