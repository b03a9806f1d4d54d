"""The in-memory session store: the default without a data dir, and a test fake."""

from __future__ import annotations

import copy

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from .interfaces import ISessionStore
from .records import (
    MessageRecord,
    RetainedRecord,
    SessionRecord,
    StoredState,
    WillRecord,
)


@implementer(ISessionStore)
class MemoryStore:
    """Keep the journal in dicts; nothing survives the process."""

    durable = False

    def __init__(self) -> None:
        self._state = StoredState()
        # Outgoing messages per client id, keyed by MessageRecord.key.
        self._messages: dict[str, dict[int, MessageRecord]] = {}

    def load(self) -> StoredState:
        # A deep copy, so the broker never shares records with the journal.
        state = copy.deepcopy(self._state)
        state.messages = {
            client_id: [copy.copy(messages[key]) for key in sorted(messages)]
            for client_id, messages in self._messages.items()
            if messages
        }
        return state

    def put_session(self, record: SessionRecord) -> None:
        self._state.sessions[record.client_id] = copy.deepcopy(record)

    def delete_session(self, client_id: str) -> None:
        self._state.sessions.pop(client_id, None)
        self._messages.pop(client_id, None)
        self._state.inbound.pop(client_id, None)
        self._state.wills.pop(client_id, None)

    def put_message(self, client_id: str, record: MessageRecord) -> None:
        self._messages.setdefault(client_id, {})[record.key] = copy.copy(record)

    def delete_message(self, client_id: str, key: int) -> None:
        self._messages.get(client_id, {}).pop(key, None)

    def put_inbound(self, client_id: str, packet_id: int) -> None:
        self._state.inbound.setdefault(client_id, set()).add(packet_id)

    def delete_inbound(self, client_id: str, packet_id: int) -> None:
        self._state.inbound.get(client_id, set()).discard(packet_id)

    def put_retained(self, record: RetainedRecord) -> None:
        self._state.retained[record.topic] = copy.copy(record)

    def delete_retained(self, topic: str) -> None:
        self._state.retained.pop(topic, None)

    def put_will(self, record: WillRecord) -> None:
        self._state.wills[record.client_id] = copy.copy(record)

    def delete_will(self, client_id: str) -> None:
        self._state.wills.pop(client_id, None)

    def commit(self) -> Deferred[None]:
        return succeed(None)

    def close(self) -> Deferred[None]:
        return succeed(None)
