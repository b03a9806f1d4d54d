"""The broker's journal: every change of durable state, written through the store.

The broker keeps its state in memory and writes each change to an
:class:`~mqttauth.store.interfaces.ISessionStore` as it happens.  With a
durable store, acknowledgements that promise durability (PUBACK for QoS 1,
PUBREC for QoS 2) and deliveries of journaled QoS 1 and 2 messages wait for
the commit that covers them.  The changes of one reactor turn share one
``commit()`` call, so no Deferred is made per message.  Batches complete in
the order they were made, even if the store fires them out of order.  With a
store that is not durable nothing waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from mqttauth.mqtt.constants import PropertyId
from mqttauth.store.interfaces import ISessionStore
from mqttauth.store.records import (
    MessageRecord,
    RetainedRecord,
    SessionRecord,
    SubscriptionRecord,
    WillRecord,
)

from .message import Message

if TYPE_CHECKING:
    from .session import Outgoing, Session

log = Logger(namespace="mqttauth.broker.journal")


class _Batch:
    __slots__ = ("sequence", "actions", "sessions", "done")

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence
        self.actions: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.sessions: dict[str, Session] = {}
        self.done = False


class Journal:
    """Writes broker state changes to a store and batches the waits on commit."""

    def __init__(self, store: ISessionStore, reactor: Any) -> None:
        # Typed Any: mypy cannot check calls through a zope Interface.
        self.store: Any = store
        self.reactor = reactor
        self.durable = bool(store.durable)
        #: Sequence number of the newest batch whose commit has completed.
        self.committed = 0
        self._sequence = 0
        self._current: _Batch | None = None
        self._waiting: deque[_Batch] = deque()

    # -- waiting on commit -----------------------------------------------------

    def after_commit(self, action: Callable[..., Any], *args: Any) -> None:
        """Run ``action(*args)`` once the changes made so far are durable.

        Runs it at once when the store is not durable.
        """
        if not self.durable:
            action(*args)
            return
        self._batch().actions.append((action, args))

    def hold(self, session: Session) -> int:
        """Return the sequence number a new message of ``session`` waits for.

        The session is pumped once that batch has been committed.
        """
        batch = self._batch()
        batch.sessions[session.client_id] = session
        return batch.sequence

    def _batch(self) -> _Batch:
        batch = self._current
        if batch is None:
            self._sequence += 1
            batch = self._current = _Batch(self._sequence)
            self.reactor.callLater(0, self._flush)
        return batch

    def _flush(self) -> None:
        batch = self._current
        self._current = None
        if batch is None:
            return
        self._waiting.append(batch)
        try:
            result = self.store.commit()
        except Exception:
            self._failed(Failure(), batch)
            return
        if isinstance(result, Deferred):
            result.addCallbacks(self._committed, self._failed, (batch,), None, (batch,))
        else:
            self._committed(None, batch)

    def _committed(self, _: object, batch: _Batch) -> None:
        batch.done = True
        waiting = self._waiting
        while waiting and waiting[0].done:
            ready = waiting.popleft()
            self.committed = ready.sequence
            for action, args in ready.actions:
                try:
                    action(*args)
                except Exception:
                    log.failure("Action after journal commit failed")
            for session in ready.sessions.values():
                session.pump()

    def _failed(self, failure: Failure, batch: _Batch) -> None:
        # NOTE: the acknowledgements of this batch still go out, so a client
        # does not retry forever; the messages may be lost by a crash.
        log.failure("Journal commit failed", failure=failure)
        self._committed(None, batch)

    # -- sessions ----------------------------------------------------------------

    def put_session(self, session: Session) -> None:
        self.store.put_session(session_record(session))
        session.journaled = True

    def delete_session(self, client_id: str) -> None:
        self.store.delete_session(client_id)

    def put_message(self, client_id: str, outgoing: Outgoing) -> None:
        self.store.put_message(client_id, message_record(outgoing))

    def delete_message(self, client_id: str, key: int) -> None:
        self.store.delete_message(client_id, key)

    def put_inbound(self, client_id: str, packet_id: int) -> None:
        self.store.put_inbound(client_id, packet_id)

    def delete_inbound(self, client_id: str, packet_id: int) -> None:
        self.store.delete_inbound(client_id, packet_id)

    # -- retained messages and wills ---------------------------------------------

    def put_retained(self, message: Message) -> None:
        self.store.put_retained(
            RetainedRecord(
                topic=message.topic,
                payload=message.payload,
                qos=message.qos,
                properties=dict(message.properties),
                expires_at=message.expires_at,
            )
        )

    def delete_retained(self, topic: str) -> None:
        self.store.delete_retained(topic)

    def put_will(self, record: WillRecord) -> None:
        self.store.put_will(record)

    def delete_will(self, client_id: str) -> None:
        self.store.delete_will(client_id)


def session_record(session: Session) -> SessionRecord:
    """Return the store record of a session with its subscriptions."""
    subscriptions = {
        topic_filter: SubscriptionRecord(
            topic_filter=topic_filter,
            qos=subscription.qos,
            no_local=subscription.no_local,
            retain_as_published=subscription.retain_as_published,
            retain_handling=subscription.retain_handling,
            subscription_identifier=subscription.subscription_identifier,
        )
        for topic_filter, subscription in session.subscriptions.items()
    }
    return SessionRecord(
        client_id=session.client_id,
        protocol_level=session.protocol_level,
        expiry_interval=session.expiry_interval,
        disconnected_at=session.disconnected_at,
        subscriptions=subscriptions,
    )


def message_record(outgoing: Outgoing) -> MessageRecord:
    """Return the store record of an outgoing message.

    The Subscription Identifiers travel in ``properties``, as they are sent.
    """
    message = outgoing.message
    properties = dict(message.properties)
    if outgoing.subscription_identifiers:
        properties[PropertyId.SUBSCRIPTION_IDENTIFIER] = list(
            outgoing.subscription_identifiers
        )
    return MessageRecord(
        key=outgoing.key,
        topic=message.topic,
        payload=message.payload,
        qos=outgoing.qos,
        retain=outgoing.retain,
        properties=properties,
        expires_at=message.expires_at,
        packet_id=outgoing.packet_id,
        state=outgoing.state,
    )
