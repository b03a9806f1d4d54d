"""Will Messages: published when a connection ends without a normal DISCONNECT.

A will goes out when the Will Delay Interval passes or when the session
ends, whichever comes first (MQTT-3.1.3-9).  A new connection with the same
client id before then cancels it.  A delayed will is journaled, so it
survives a restart.  When the will is due the authorizer chain is asked,
with the identity that was connected, whether it may be published.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from mqttauth.auth.interfaces import Identity
from mqttauth.mqtt.constants import PropertyId
from mqttauth.mqtt.packets import Will
from mqttauth.store.records import WillRecord

from .authz import when_decided
from .message import HOP_PROPERTIES, Message

if TYPE_CHECKING:
    from .broker import Broker

log = Logger(namespace="mqttauth.broker.wills")


class PendingWill:
    """A will whose delay is running."""

    __slots__ = ("record", "identity", "call")

    def __init__(self, record: WillRecord, identity: Identity, call: Any) -> None:
        self.record = record
        self.identity = identity
        self.call = call


class Wills:
    """The delayed wills of disconnected sessions, by client id."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._pending: dict[str, PendingWill] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def connection_ended(
        self, client_id: str, will: Will, identity: Identity, session_expiry: int | None
    ) -> None:
        """Publish ``will`` now, or schedule it when it has a Will Delay Interval.

        ``session_expiry`` is the time left of the session in seconds, None
        when it never expires; 0 means the session has ended already.
        """
        delay = will.properties.get(PropertyId.WILL_DELAY_INTERVAL, 0)
        if session_expiry is not None:
            delay = min(delay, session_expiry)
        record = will_record(client_id, will, identity)
        if delay <= 0:
            self.publish(record, identity)
            return
        record.publish_at = self._broker.reactor.seconds() + delay
        self._schedule(record, identity, delay)
        self._broker.journal.put_will(record)

    def restore(self, record: WillRecord, session_alive: bool) -> None:
        """Schedule a will read from the journal; publish it if it is due."""
        identity = identity_from_record(record)
        delay = record.publish_at - self._broker.reactor.seconds()
        if not session_alive or delay <= 0:
            self._broker.journal.delete_will(record.client_id)
            self.publish(record, identity)
            return
        self._schedule(record, identity, delay)

    def _schedule(self, record: WillRecord, identity: Identity, delay: float) -> None:
        self.cancel(record.client_id)
        call = self._broker.reactor.callLater(delay, self._due, record.client_id)
        self._pending[record.client_id] = PendingWill(record, identity, call)

    def _due(self, client_id: str) -> None:
        pending = self._pending.pop(client_id, None)
        if pending is None:
            return
        self._broker.journal.delete_will(client_id)
        self.publish(pending.record, pending.identity)

    def cancel(self, client_id: str) -> bool:
        """Drop the pending will of ``client_id`` (it reconnected in time)."""
        pending = self._pending.pop(client_id, None)
        if pending is None:
            return False
        if pending.call.active():
            pending.call.cancel()
        self._broker.journal.delete_will(client_id)
        return True

    def flush(self, client_id: str) -> None:
        """Publish the pending will of ``client_id`` now (its session ended)."""
        pending = self._pending.pop(client_id, None)
        if pending is None:
            return
        if pending.call.active():
            pending.call.cancel()
        self._broker.journal.delete_will(client_id)
        self.publish(pending.record, pending.identity)

    def stop(self) -> None:
        """Cancel every timer; the journal keeps the wills for the next start."""
        for pending in self._pending.values():
            if pending.call.active():
                pending.call.cancel()
        self._pending.clear()

    def publish(self, record: WillRecord, identity: Identity) -> None:
        """Publish a will if the authorizer chain allows it."""
        broker = self._broker
        decision = broker.authorizers.publish(
            identity, record.topic, record.qos, record.retain
        )
        when_decided(decision, self._authorized, record, identity)

    def _authorized(
        self, allowed: bool, record: WillRecord, identity: Identity
    ) -> None:
        if not allowed:
            log.info(
                "Will of {client_id} ({principal}) to {topic} denied",
                client_id=record.client_id,
                principal=identity.principal,
                topic=record.topic,
            )
            return
        broker = self._broker
        properties = dict(record.properties)
        expires_at = None
        interval = properties.pop(PropertyId.MESSAGE_EXPIRY_INTERVAL, None)
        if interval is not None:
            expires_at = broker.reactor.seconds() + interval
        for key in HOP_PROPERTIES:
            properties.pop(key, None)
        message = Message(
            record.topic,
            record.payload,
            record.qos,
            record.retain,
            properties,
            expires_at,
            record.client_id,
        )
        log.info(
            "Publishing will of {client_id} to {topic}",
            client_id=record.client_id,
            topic=record.topic,
        )
        broker.publish(message)


def will_record(client_id: str, will: Will, identity: Identity) -> WillRecord:
    """Return the journal record of a will, with the identity that connected."""
    return WillRecord(
        client_id=client_id,
        topic=will.topic,
        payload=will.payload,
        qos=will.qos,
        retain=will.retain,
        properties=dict(will.properties),
        principal=identity.principal,
        identity_attributes={
            "organization": identity.organization,
            "groups": list(identity.groups),
            "expires_at": identity.expires_at,
            "attributes": dict(identity.attributes),
            "anonymous": identity.anonymous,
        },
    )


def identity_from_record(record: WillRecord) -> Identity:
    """Rebuild the identity a will was stored with."""
    stored = record.identity_attributes or {}
    return Identity(
        principal=record.principal,
        client_id=record.client_id,
        organization=stored.get("organization"),
        groups=tuple(stored.get("groups") or ()),
        expires_at=stored.get("expires_at"),
        attributes=dict(stored.get("attributes") or {}),
        anonymous=stored.get("anonymous") is True,
    )
