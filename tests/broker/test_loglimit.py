"""The cap on log lines of refused CONNECTs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher
from zope.interface import implementer

from mqttauth.auth.interfaces import AuthenticationError, AuthRequest, IAuthenticator
from mqttauth.broker.loglimit import LogLimit
from mqttauth.mqtt.constants import ReasonCode
from tests.broker.clocked import FakeClient, clocked_broker


@implementer(IAuthenticator)
class RejectingAuthenticator:
    methods = ()

    def authenticate(self, request: AuthRequest) -> None:
        raise AuthenticationError(
            ReasonCode.NOT_AUTHORIZED, "Not allowed", "bad_token", key_id="k1"
        )


@pytest.fixture
def events() -> Iterator[list[LogEvent]]:
    captured: list[LogEvent] = []
    globalLogPublisher.addObserver(captured.append)
    yield captured
    globalLogPublisher.removeObserver(captured.append)


def _formats(events: list[LogEvent], start: str) -> list[LogEvent]:
    return [e for e in events if str(e.get("log_format", "")).startswith(start)]


def test_limit_allows_then_counts(events: list[LogEvent]) -> None:
    clock = Clock()
    limit = LogLimit(clock, "refused connections", limit=3, window=10.0)
    assert [limit.allow() for _ in range(5)] == [True, True, True, False, False]
    clock.advance(9.9)
    assert not limit.allow()
    assert _formats(events, "{count} more") == []
    clock.advance(0.1)
    assert limit.allow()
    [summary] = _formats(events, "{count} more")
    assert summary["count"] == 3
    assert summary["description"] == "refused connections"


def test_refused_connects_capped(events: list[LogEvent]) -> None:
    broker = clocked_broker(authenticator=RejectingAuthenticator())
    for number in range(150):
        client = FakeClient(broker)
        connack = client.connect(f"c{number}")
        assert connack.reason_code == ReasonCode.NOT_AUTHORIZED
    refused = _formats(events, "Refused CONNECT")
    assert len(refused) == 100
    assert refused[0]["reason"] == "bad_token, key id k1"
    broker.reactor.advance(10)
    FakeClient(broker).connect("late")
    [summary] = _formats(events, "{count} more")
    assert summary["count"] == 50
    assert len(_formats(events, "Refused CONNECT")) == 101
