"""Store records as rows of the SQLite tables, and read them back.

A :class:`Group` collects the changes the broker makes between two
hand-overs to the writer thread.  It keeps only the last change per row,
as a ready-made parameter tuple, so the writer has nothing left to do but
``executemany``.  The tables are defined in :mod:`mqttauth.store.schema`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from twisted.internet.defer import Deferred

from .encoding import decode_properties, decode_value, encode_properties, encode_value
from .records import (
    MessageRecord,
    RetainedRecord,
    SessionRecord,
    StoredState,
    SubscriptionRecord,
    WillRecord,
)

Row = tuple[Any, ...]

_CLEAR_SESSION = (
    "DELETE FROM sessions WHERE client_id = ?",
    "DELETE FROM subscriptions WHERE client_id = ?",
    "DELETE FROM messages WHERE client_id = ?",
    "DELETE FROM inbound WHERE client_id = ?",
    "DELETE FROM wills WHERE client_id = ?",
)
_PUT_SESSION = "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)"
_CLEAR_SUBSCRIPTIONS = "DELETE FROM subscriptions WHERE client_id = ?"
_PUT_SUBSCRIPTION = "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_PUT_MESSAGE = "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_DELETE_MESSAGE = "DELETE FROM messages WHERE client_id = ? AND key = ?"
_PUT_INBOUND = "INSERT OR IGNORE INTO inbound VALUES (?, ?)"
_DELETE_INBOUND = "DELETE FROM inbound WHERE client_id = ? AND packet_id = ?"
_PUT_RETAINED = "INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?)"
_DELETE_RETAINED = "DELETE FROM retained WHERE topic = ?"
_PUT_WILL = "INSERT OR REPLACE INTO wills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_DELETE_WILL = "DELETE FROM wills WHERE client_id = ?"


def _as_bytes(payload: bytes | bytearray | memoryview) -> bytes:
    # A copy, so a buffer the broker reuses later cannot change the row.
    return payload if type(payload) is bytes else bytes(payload)


class Group:
    """The changes recorded since the last hand-over, last change per row.

    The ``max_keys`` dict passed to the message methods belongs to the
    store: per client id, the highest message key that may have a row in
    the database (or in a group ahead of this one).  A message whose key is
    above it is *fresh*, so a delete in the same group cancels its put and
    nothing is written for it.
    """

    __slots__ = (
        "cleared",
        "sessions",
        "messages",
        "fresh",
        "inbound",
        "retained",
        "wills",
        "size",
        "waiters",
    )

    def __init__(self) -> None:
        #: Client ids whose session is deleted, with everything it owns,
        #: before the other changes of the group are applied.
        self.cleared: set[str] = set()
        #: Client id to (session row, subscription rows).
        self.sessions: dict[str, tuple[Row, list[Row]]] = {}
        #: (client id, key) to the row to write, or None to delete it.
        self.messages: dict[tuple[str, int], Row | None] = {}
        #: Message keys whose row is not in the database yet.
        self.fresh: set[tuple[str, int]] = set()
        #: (client id, packet id) to True (insert) or False (delete).
        self.inbound: dict[tuple[str, int], bool] = {}
        self.retained: dict[str, Row | None] = {}
        self.wills: dict[str, Row | None] = {}
        #: Mutations recorded, collapsed ones included.
        self.size = 0
        #: The commit() Deferreds that fire once this group is written.
        self.waiters: list[Deferred[None]] = []

    def put_session(self, record: SessionRecord) -> None:
        client_id = record.client_id
        session = (
            client_id,
            record.protocol_level,
            record.expiry_interval,
            record.disconnected_at,
        )
        subscriptions = [
            (
                client_id,
                topic_filter,
                position,
                subscription.qos,
                int(subscription.no_local),
                int(subscription.retain_as_published),
                subscription.retain_handling,
                subscription.subscription_identifier,
            )
            for position, (topic_filter, subscription) in enumerate(
                record.subscriptions.items()
            )
        ]
        self.sessions[client_id] = (session, subscriptions)

    def delete_session(self, client_id: str, max_keys: dict[str, int]) -> None:
        self.cleared.add(client_id)
        self.sessions.pop(client_id, None)
        self.wills.pop(client_id, None)
        for key in [key for key in self.messages if key[0] == client_id]:
            del self.messages[key]
            self.fresh.discard(key)
        for key in [key for key in self.inbound if key[0] == client_id]:
            del self.inbound[key]
        # The deletion is written before any later row of this client id,
        # so from now on every key of the client id is fresh.
        max_keys.pop(client_id, None)

    def put_message(
        self, client_id: str, record: MessageRecord, max_keys: dict[str, int]
    ) -> None:
        key = (client_id, record.key)
        if key not in self.messages:
            highest = max_keys.get(client_id)
            if highest is None or record.key > highest:
                self.fresh.add(key)
                max_keys[client_id] = record.key
        self.messages[key] = (
            client_id,
            record.key,
            record.topic,
            _as_bytes(record.payload),
            record.qos,
            int(record.retain),
            encode_properties(record.properties),
            record.expires_at,
            record.packet_id,
            record.state,
        )

    def delete_message(self, client_id: str, key: int) -> None:
        message_key = (client_id, key)
        if message_key in self.fresh:
            self.fresh.discard(message_key)
            del self.messages[message_key]
        else:
            self.messages[message_key] = None

    def put_retained(self, record: RetainedRecord) -> None:
        self.retained[record.topic] = (
            record.topic,
            _as_bytes(record.payload),
            record.qos,
            encode_properties(record.properties),
            record.expires_at,
        )

    def put_will(self, record: WillRecord) -> None:
        self.wills[record.client_id] = (
            record.client_id,
            record.topic,
            _as_bytes(record.payload),
            record.qos,
            int(record.retain),
            encode_properties(record.properties),
            record.publish_at,
            record.principal,
            encode_value(record.identity_attributes),
        )

    def apply(self, connection: sqlite3.Connection) -> None:
        """Write the group inside the caller's transaction.

        Session deletions go first, so a row recorded after a deletion
        survives it.
        """
        if self.cleared:
            client_ids = [(client_id,) for client_id in self.cleared]
            for statement in _CLEAR_SESSION:
                connection.executemany(statement, client_ids)
        if self.sessions:
            sessions = self.sessions.values()
            connection.executemany(_PUT_SESSION, [row for row, _ in sessions])
            connection.executemany(
                _CLEAR_SUBSCRIPTIONS, [(client_id,) for client_id in self.sessions]
            )
            connection.executemany(
                _PUT_SUBSCRIPTION, [row for _, rows in sessions for row in rows]
            )
        _put_and_delete(connection, self.messages, _PUT_MESSAGE, _DELETE_MESSAGE)
        if self.inbound:
            inbound = self.inbound.items()
            connection.executemany(_PUT_INBOUND, [key for key, put in inbound if put])
            connection.executemany(
                _DELETE_INBOUND, [key for key, put in inbound if not put]
            )
        _put_and_delete(
            connection, _one_column_keys(self.retained), _PUT_RETAINED, _DELETE_RETAINED
        )
        _put_and_delete(
            connection, _one_column_keys(self.wills), _PUT_WILL, _DELETE_WILL
        )


def _one_column_keys(rows: dict[str, Row | None]) -> dict[tuple[str], Row | None]:
    return {(key,): row for key, row in rows.items()}


def _put_and_delete(
    connection: sqlite3.Connection,
    rows: dict[Any, Row | None],
    put: str,
    delete: str,
) -> None:
    if not rows:
        return
    connection.executemany(put, [row for row in rows.values() if row is not None])
    connection.executemany(delete, [key for key, row in rows.items() if row is None])


def read_state(connection: sqlite3.Connection) -> StoredState:
    """Read every table back into records; messages come in key order."""
    state = StoredState()
    for client_id, level, expiry, disconnected_at in connection.execute(
        "SELECT client_id, protocol_level, expiry_interval, disconnected_at"
        " FROM sessions"
    ):
        state.sessions[client_id] = SessionRecord(
            client_id, level, expiry, disconnected_at
        )
    for row in connection.execute(
        "SELECT client_id, topic_filter, qos, no_local, retain_as_published,"
        " retain_handling, subscription_identifier FROM subscriptions"
        " ORDER BY client_id, position"
    ):
        session = state.sessions.get(row[0])
        if session is not None:
            session.subscriptions[row[1]] = SubscriptionRecord(
                row[1], row[2], bool(row[3]), bool(row[4]), row[5], row[6]
            )
    for row in connection.execute(
        "SELECT client_id, key, topic, payload, qos, retain, properties, expires_at,"
        " packet_id, state FROM messages ORDER BY client_id, key"
    ):
        state.messages.setdefault(row[0], []).append(
            MessageRecord(
                key=row[1],
                topic=row[2],
                payload=row[3],
                qos=row[4],
                retain=bool(row[5]),
                properties=decode_properties(row[6]),
                expires_at=row[7],
                packet_id=row[8],
                state=row[9],
            )
        )
    for client_id, packet_id in connection.execute(
        "SELECT client_id, packet_id FROM inbound"
    ):
        state.inbound.setdefault(client_id, set()).add(packet_id)
    for topic, payload, qos, properties, expires_at in connection.execute(
        "SELECT topic, payload, qos, properties, expires_at FROM retained"
    ):
        state.retained[topic] = RetainedRecord(
            topic, payload, qos, decode_properties(properties), expires_at
        )
    for row in connection.execute(
        "SELECT client_id, topic, payload, qos, retain, properties, publish_at,"
        " principal, identity_attributes FROM wills"
    ):
        state.wills[row[0]] = WillRecord(
            client_id=row[0],
            topic=row[1],
            payload=row[2],
            qos=row[3],
            retain=bool(row[4]),
            properties=decode_properties(row[5]),
            publish_at=row[6],
            principal=row[7],
            identity_attributes=decode_value(row[8]),
        )
    return state
