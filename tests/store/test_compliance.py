"""Behaviour every ISessionStore implementation must have.

Each test runs against the in-memory store and the SQLite store.  A test
makes its changes, waits on commit(), and checks what load() returns.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from mqttauth.mqtt.constants import PropertyId
from mqttauth.store.interfaces import ISessionStore
from mqttauth.store.memory import MemoryStore
from mqttauth.store.records import (
    QUEUED,
    RELEASED,
    SENT,
    MessageRecord,
    RetainedRecord,
    SessionRecord,
    StoredState,
    SubscriptionRecord,
    WillRecord,
)
from mqttauth.store.sqlite import SQLiteStore

PROPERTIES: dict[int, Any] = {
    PropertyId.PAYLOAD_FORMAT_INDICATOR: 1,
    PropertyId.MESSAGE_EXPIRY_INTERVAL: 0xFFFFFFFF,
    PropertyId.CONTENT_TYPE: "application/json; charset=ütf-8",
    PropertyId.RESPONSE_TOPIC: "reply/\u00e9",
    PropertyId.CORRELATION_DATA: b"\x00\xff\x10",
    PropertyId.SUBSCRIPTION_IDENTIFIER: [1, 268435455],
    PropertyId.USER_PROPERTY: [("a", "1"), ("a", "2"), ("", "")],
}


@pytest.fixture(params=["memory", "sqlite"])
def store(
    request: pytest.FixtureRequest, make_sqlite_store: Callable[..., SQLiteStore]
) -> ISessionStore:
    made: ISessionStore = (
        MemoryStore() if request.param == "memory" else make_sqlite_store()
    )
    made.load()
    return made


def committed(store: ISessionStore) -> Generator[Any, Any, StoredState]:
    yield store.commit()
    state: StoredState = store.load()
    return state


def session(client_id: str = "c") -> SessionRecord:
    return SessionRecord(
        client_id,
        protocol_level=5,
        expiry_interval=3600,
        disconnected_at=1700000000.25,
        subscriptions={
            "a/+": SubscriptionRecord("a/+", 1, True, True, 2, 7),
            "$share/g/b/#": SubscriptionRecord("$share/g/b/#", 2),
            "c": SubscriptionRecord("c", 0, False, False, 1, None),
        },
    )


def message(key: int, **fields: Any) -> MessageRecord:
    values: dict[str, Any] = {"topic": "t", "payload": str(key).encode(), "qos": 1}
    values.update(fields)
    return MessageRecord(key=key, **values)


def test_store_provides_interface(store: ISessionStore) -> None:
    assert verifyObject(ISessionStore, store)


@pytest_twisted.inlineCallbacks
def test_commit_without_changes(store: ISessionStore) -> Generator[Any, Any, None]:
    result = yield store.commit()
    assert result is None


@pytest_twisted.inlineCallbacks
def test_session_round_trip(store: ISessionStore) -> Generator[Any, Any, None]:
    store.put_session(session())
    store.put_session(SessionRecord("online", 4, 0xFFFFFFFF))
    state = yield from committed(store)
    assert state.sessions["c"] == session()
    assert state.sessions["online"] == SessionRecord("online", 4, 0xFFFFFFFF)


@pytest_twisted.inlineCallbacks
def test_session_keeps_subscription_order(
    store: ISessionStore,
) -> Generator[Any, Any, None]:
    store.put_session(session())
    state = yield from committed(store)
    assert list(state.sessions["c"].subscriptions) == ["a/+", "$share/g/b/#", "c"]


@pytest_twisted.inlineCallbacks
def test_session_put_replaces(store: ISessionStore) -> Generator[Any, Any, None]:
    store.put_session(session())
    yield store.commit()
    replacement = SessionRecord("c", 5, 10, None, {"x": SubscriptionRecord("x", 2)})
    store.put_session(replacement)
    state = yield from committed(store)
    assert state.sessions["c"] == replacement


@pytest_twisted.inlineCallbacks
def test_message_round_trip(store: ISessionStore) -> Generator[Any, Any, None]:
    records = [
        message(1, properties=PROPERTIES, expires_at=1700000100.5, retain=True),
        message(2, qos=2, packet_id=65535, state=SENT, payload=b""),
        message(3, qos=2, packet_id=1, state=RELEASED, payload=bytes(range(256))),
        message(4, qos=0, state=QUEUED),
    ]
    for record in records:
        store.put_message("c", record)
    state = yield from committed(store)
    assert state.messages["c"] == records


@pytest_twisted.inlineCallbacks
def test_message_properties_keep_types(
    store: ISessionStore,
) -> Generator[Any, Any, None]:
    store.put_message("c", message(1, properties=PROPERTIES))
    state = yield from committed(store)
    properties = state.messages["c"][0].properties
    user_properties = properties[PropertyId.USER_PROPERTY]
    assert type(user_properties) is list
    assert all(type(pair) is tuple for pair in user_properties)
    assert type(properties[PropertyId.CORRELATION_DATA]) is bytes
    assert type(properties[PropertyId.CONTENT_TYPE]) is str


@pytest_twisted.inlineCallbacks
def test_messages_ordered_by_key(store: ISessionStore) -> Generator[Any, Any, None]:
    for key in (10, 2, 9, 1, 100):
        store.put_message("c", message(key))
    store.put_message("d", message(5))
    state = yield from committed(store)
    assert [record.key for record in state.messages["c"]] == [1, 2, 9, 10, 100]


@pytest_twisted.inlineCallbacks
def test_message_put_replaces(store: ISessionStore) -> Generator[Any, Any, None]:
    store.put_message("c", message(1))
    yield store.commit()
    store.put_message("c", message(1, packet_id=9, state=SENT))
    state = yield from committed(store)
    assert state.messages["c"] == [message(1, packet_id=9, state=SENT)]


@pytest_twisted.inlineCallbacks
def test_message_delete(store: ISessionStore) -> Generator[Any, Any, None]:
    store.put_message("c", message(1))
    store.put_message("c", message(2))
    yield store.commit()
    store.delete_message("c", 1)
    store.delete_message("c", 99)
    store.delete_message("nobody", 1)
    state = yield from committed(store)
    assert state.messages["c"] == [message(2)]


@pytest_twisted.inlineCallbacks
def test_message_put_then_delete(store: ISessionStore) -> Generator[Any, Any, None]:
    store.put_message("c", message(1))
    store.delete_message("c", 1)
    state = yield from committed(store)
    assert "c" not in state.messages


@pytest_twisted.inlineCallbacks
def test_message_delete_then_put(store: ISessionStore) -> Generator[Any, Any, None]:
    store.put_message("c", message(1))
    yield store.commit()
    store.delete_message("c", 1)
    store.put_message("c", message(1, payload=b"again"))
    state = yield from committed(store)
    assert state.messages["c"] == [message(1, payload=b"again")]


@pytest_twisted.inlineCallbacks
def test_inbound_round_trip(store: ISessionStore) -> Generator[Any, Any, None]:
    for packet_id in (1, 7, 65535):
        store.put_inbound("c", packet_id)
    store.put_inbound("c", 7)
    store.put_inbound("d", 7)
    yield store.commit()
    store.delete_inbound("c", 1)
    store.delete_inbound("c", 2)
    state = yield from committed(store)
    assert state.inbound["c"] == {7, 65535}
    assert state.inbound["d"] == {7}


@pytest_twisted.inlineCallbacks
def test_retained_round_trip(store: ISessionStore) -> Generator[Any, Any, None]:
    first = RetainedRecord("a/b", b"one", 1, PROPERTIES, 1700000200.0)
    store.put_retained(first)
    store.put_retained(RetainedRecord("gone", b"x", 0))
    yield store.commit()
    store.put_retained(RetainedRecord("a/c", b"", 2))
    store.delete_retained("gone")
    store.delete_retained("never")
    state = yield from committed(store)
    assert state.retained == {"a/b": first, "a/c": RetainedRecord("a/c", b"", 2)}


@pytest_twisted.inlineCallbacks
def test_retained_put_replaces(store: ISessionStore) -> Generator[Any, Any, None]:
    store.put_retained(RetainedRecord("a", b"old", 1))
    yield store.commit()
    store.put_retained(RetainedRecord("a", b"new", 0))
    state = yield from committed(store)
    assert state.retained["a"] == RetainedRecord("a", b"new", 0)


@pytest_twisted.inlineCallbacks
def test_will_round_trip(store: ISessionStore) -> Generator[Any, Any, None]:
    will = WillRecord(
        "c",
        "last/will",
        b"bye",
        qos=2,
        retain=True,
        properties={PropertyId.CONTENT_TYPE: "text/plain"},
        publish_at=1700000300.75,
        principal="device-1",
        identity_attributes={
            "groups": ["sensors", "fleet"],
            "organization": "acme",
            "claims": {"exp": 1700003600, "scope": None, "ratio": 0.5, "ok": True},
        },
    )
    store.put_will(will)
    store.put_will(WillRecord("d", "w", b"", 0, False))
    yield store.commit()
    store.delete_will("d")
    state = yield from committed(store)
    assert state.wills == {"c": will}


@pytest_twisted.inlineCallbacks
def test_delete_session_cascades(store: ISessionStore) -> Generator[Any, Any, None]:
    for client_id in ("c", "other"):
        store.put_session(session(client_id))
        store.put_message(client_id, message(1))
        store.put_inbound(client_id, 5)
        store.put_will(WillRecord(client_id, "w", b"", 0, False))
    yield store.commit()
    store.delete_session("c")
    state = yield from committed(store)
    assert "c" not in state.sessions
    assert "c" not in state.messages
    assert "c" not in state.inbound
    assert "c" not in state.wills
    assert state.sessions["other"] == session("other")
    assert state.messages["other"] == [message(1)]
    assert state.inbound["other"] == {5}
    assert "other" in state.wills


@pytest_twisted.inlineCallbacks
def test_delete_session_keeps_retained(
    store: ISessionStore,
) -> Generator[Any, Any, None]:
    store.put_session(session())
    store.put_retained(RetainedRecord("c", b"r", 1))
    store.delete_session("c")
    state = yield from committed(store)
    assert state.retained == {"c": RetainedRecord("c", b"r", 1)}


@pytest_twisted.inlineCallbacks
def test_delete_session_then_new_rows(
    store: ISessionStore,
) -> Generator[Any, Any, None]:
    store.put_session(session())
    store.put_message("c", message(1))
    store.put_message("c", message(2))
    yield store.commit()
    store.put_message("c", message(3))
    store.delete_session("c")
    store.put_session(SessionRecord("c", 4, 60))
    store.put_message("c", message(1, payload=b"new"))
    store.put_inbound("c", 3)
    state = yield from committed(store)
    assert state.sessions["c"] == SessionRecord("c", 4, 60)
    assert state.messages["c"] == [message(1, payload=b"new")]
    assert state.inbound["c"] == {3}


@pytest_twisted.inlineCallbacks
def test_load_returns_copies(store: ISessionStore) -> Generator[Any, Any, None]:
    store.put_session(session())
    store.put_message("c", message(1))
    state = yield from committed(store)
    state.sessions["c"].subscriptions.clear()
    state.messages["c"][0].payload = b"changed"
    again = store.load()
    assert again.sessions["c"] == session()
    assert again.messages["c"] == [message(1)]
