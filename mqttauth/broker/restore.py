"""Rebuild the broker's live state from what the journal stored.

Runs once, in :meth:`Broker.start`.  What expired while the broker was down
is dropped here, and removed from the store too: sessions past their
Session Expiry Interval (their wills go out), queued messages past their
Message Expiry Interval, retained messages likewise.  Messages already in
flight are kept even if expired, since their delivery had started.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mqttauth.mqtt.constants import PropertyId
from mqttauth.mqtt.topics import parse_shared_subscription
from mqttauth.store.records import QUEUED, MessageRecord, SessionRecord, StoredState

from .message import Message
from .session import NEVER_EXPIRES, Outgoing, Session
from .topictree import Subscription

if TYPE_CHECKING:
    from .broker import Broker


def restore(broker: Broker, state: StoredState) -> None:
    """Load ``state`` into ``broker``: retained messages, sessions, then wills."""
    now = broker.reactor.seconds()
    journal = broker.journal
    for retained in state.retained.values():
        if retained.expires_at is not None and retained.expires_at <= now:
            journal.delete_retained(retained.topic)
            continue
        broker.retained.set(
            Message(
                retained.topic,
                retained.payload,
                retained.qos,
                True,
                dict(retained.properties),
                retained.expires_at,
            )
        )
    for client_id, record in state.sessions.items():
        disconnected_at = record.disconnected_at
        if disconnected_at is None:
            # The broker stopped while the client was connected: the
            # session's expiry starts counting now.
            disconnected_at = now
        expiry = record.expiry_interval
        if expiry != NEVER_EXPIRES and disconnected_at + expiry <= now:
            journal.delete_session(client_id)
            continue
        session = _restore_session(broker, record, disconnected_at)
        _restore_messages(broker, session, state.messages.get(client_id, ()), now)
        inbound = state.inbound.get(client_id)
        if inbound:
            session.inbound = set(inbound)
        if expiry != NEVER_EXPIRES:
            session.expiry_call = broker.reactor.callLater(
                disconnected_at + expiry - now, broker._session_expired, session
            )
        if record.disconnected_at is None:
            journal.put_session(session)
    for client_id, will in state.wills.items():
        broker.wills.restore(will, client_id in broker.sessions)


def _restore_session(
    broker: Broker, record: SessionRecord, disconnected_at: float
) -> Session:
    session = Session(
        broker, record.client_id, record.protocol_level, record.expiry_interval
    )
    session.disconnected_at = disconnected_at
    session.journaled = True
    for topic_filter, stored in record.subscriptions.items():
        shared = parse_shared_subscription(topic_filter)
        share_name, match_filter = shared if shared else (None, topic_filter)
        subscription = Subscription(
            topic_filter,
            match_filter,
            share_name,
            stored.qos,
            stored.no_local,
            stored.retain_as_published,
            stored.retain_handling,
            stored.subscription_identifier,
        )
        broker.add_subscription(session, subscription)
    broker.sessions[record.client_id] = session
    return session


def _restore_messages(
    broker: Broker, session: Session, records: Iterable[MessageRecord], now: float
) -> None:
    highest_key = 0
    for record in records:
        highest_key = max(highest_key, record.key)
        if record.state == QUEUED and record.expires_at is not None:
            if record.expires_at <= now:
                broker.journal.delete_message(session.client_id, record.key)
                continue
        properties = dict(record.properties)
        identifiers = properties.pop(PropertyId.SUBSCRIPTION_IDENTIFIER, None) or ()
        message = Message(
            record.topic,
            record.payload,
            record.qos,
            record.retain,
            properties,
            record.expires_at,
        )
        outgoing = Outgoing(
            record.key, message, record.qos, record.retain, tuple(identifiers)
        )
        outgoing.state = record.state
        if record.state == QUEUED or record.packet_id is None:
            outgoing.state = QUEUED
            if session.queue is None:
                session.queue = deque()
            session.queue.append(outgoing)
            continue
        outgoing.packet_id = record.packet_id
        if session.inflight is None:
            session.inflight = {}
        session.inflight[record.packet_id] = outgoing
    session.next_key = highest_key + 1
