"""The records a session store keeps: plain data, no behaviour.

Times are POSIX seconds (``float``) taken from the broker's reactor clock, so
they keep counting across a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Outgoing message waiting in the session queue; no packet id yet.
QUEUED = "queued"
#: PUBLISH sent with ``packet_id``; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
SENT = "sent"
#: QoS 2 PUBREL sent; only the packet id matters now, until PUBCOMP.
RELEASED = "released"


@dataclass(slots=True)
class SubscriptionRecord:
    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    subscription_identifier: int | None = None


@dataclass(slots=True)
class SessionRecord:
    """A session that outlives its connection."""

    client_id: str
    protocol_level: int
    #: Session Expiry Interval in seconds; 0xFFFFFFFF never expires.
    expiry_interval: int
    #: When the last connection ended, or ``None`` while connected.
    disconnected_at: float | None = None
    #: Keyed by the topic filter as the client sent it (``$share/...`` kept).
    subscriptions: dict[str, SubscriptionRecord] = field(default_factory=dict)


@dataclass(slots=True)
class MessageRecord:
    """One outgoing message of a session: queued, in flight, or released."""

    #: Orders the messages of one session; unique within it.
    key: int
    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    #: MQTT 5.0 properties to send with it (dict from PropertyId to value).
    properties: dict[int, Any] = field(default_factory=dict)
    #: When the Message Expiry Interval runs out, or ``None``.
    expires_at: float | None = None
    packet_id: int | None = None
    state: str = QUEUED


@dataclass(slots=True)
class RetainedRecord:
    topic: str
    payload: bytes
    qos: int
    properties: dict[int, Any] = field(default_factory=dict)
    expires_at: float | None = None


@dataclass(slots=True)
class WillRecord:
    """A will whose Will Delay Interval is running for a disconnected session."""

    client_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[int, Any] = field(default_factory=dict)
    #: When the will is due: the end of the delay or of the session, if sooner.
    publish_at: float = 0.0
    #: The principal that connected, so the ACL check at publish time can run.
    principal: str = ""
    identity_attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StoredState:
    """Everything a store holds, as :meth:`ISessionStore.load` returns it."""

    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    #: Per client id, the outgoing messages in ``key`` order.
    messages: dict[str, list[MessageRecord]] = field(default_factory=dict)
    #: Per client id, inbound QoS 2 packet ids that wait for PUBREL.
    inbound: dict[str, set[int]] = field(default_factory=dict)
    retained: dict[str, RetainedRecord] = field(default_factory=dict)
    wills: dict[str, WillRecord] = field(default_factory=dict)
