"""Application messages as the broker routes them, with their encoded PUBLISH bytes.

A message is encoded once per distinct form a subscriber needs (protocol
level, QoS, RETAIN flag, Subscription Identifiers, remaining Message Expiry
Interval) and the bytes are shared by every subscriber that needs that form.
QoS 1 and 2 forms are encoded with a placeholder packet identifier that
:func:`with_packet_id` patches per subscriber.
"""

from __future__ import annotations

import math
from typing import Any

from mqttauth.mqtt.codec import encode_properties, encode_publish
from mqttauth.mqtt.constants import MQTT_5_0, PropertyId

#: Properties that belong to one hop, never forwarded as they came in.
HOP_PROPERTIES = frozenset(
    {
        PropertyId.TOPIC_ALIAS,
        PropertyId.SUBSCRIPTION_IDENTIFIER,
        PropertyId.MESSAGE_EXPIRY_INTERVAL,
        PropertyId.WILL_DELAY_INTERVAL,
    }
)

#: Encoded forms kept per message.
MAX_FORMS = 16

#: A template's form: (protocol level, QoS, RETAIN, Subscription Identifiers,
#: remaining Message Expiry Interval or None).
FormKey = tuple[int, int, bool, tuple[int, ...], int | None]


class Message:
    """One Application Message: what a PUBLISH or a will carries.

    ``properties`` contains the MQTT 5.0 properties forwarded unchanged (Payload
    Format Indicator, Content Type, Response Topic, Correlation Data, User
    Property); the Message Expiry Interval lives in ``expires_at`` instead,
    as POSIX seconds, so it keeps counting while the message waits.
    ``sender`` is the publishing client id, for No Local.
    """

    __slots__ = (
        "topic",
        "payload",
        "qos",
        "retain",
        "properties",
        "expires_at",
        "sender",
        "_properties_bytes",
        "_forms",
    )

    def __init__(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: dict[int, Any] | None = None,
        expires_at: float | None = None,
        sender: str | None = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties or {}
        self.expires_at = expires_at
        self.sender = sender
        self._properties_bytes: bytes | None = None
        self._forms: dict[FormKey, tuple[bytes, int]] | None = None

    def remaining_expiry(self, now: float) -> int | None:
        """Return the Message Expiry Interval left in whole seconds.

        ``None`` when the message does not expire, 0 once it has expired.
        """
        if self.expires_at is None:
            return None
        left = self.expires_at - now
        if left <= 0:
            return 0
        return math.ceil(left)

    def properties_bytes(self) -> bytes:
        """Return the forwarded properties, encoded once."""
        encoded = self._properties_bytes
        if encoded is None:
            encoded = encode_properties(self.properties) if self.properties else b""
            self._properties_bytes = encoded
        return encoded

    def encode(
        self,
        protocol_level: int,
        qos: int,
        retain: bool,
        subscription_identifiers: tuple[int, ...],
        expiry: int | None,
    ) -> tuple[bytes, int]:
        """Return the PUBLISH bytes of this form and the packet id offset.

        For QoS 0 the offset is 0 and the bytes are final.  For QoS 1 and 2
        the bytes carry packet id 1 at the offset; :func:`with_packet_id`
        replaces it.
        """
        if protocol_level != MQTT_5_0:
            subscription_identifiers = ()
            expiry = None
        key = (protocol_level, qos, retain, subscription_identifiers, expiry)
        forms = self._forms
        if forms is None:
            forms = self._forms = {}
        else:
            form = forms.get(key)
            if form is not None:
                return form
        form = self._encode(
            protocol_level, qos, retain, subscription_identifiers, expiry
        )
        if len(forms) >= MAX_FORMS:
            # A long-lived retained message with an expiry gets a new form each
            # second; start over rather than keep them all.
            forms.clear()
        forms[key] = form
        return form

    def encode_with_alias(
        self,
        protocol_level: int,
        qos: int,
        retain: bool,
        subscription_identifiers: tuple[int, ...],
        expiry: int | None,
        alias: int,
        send_topic: bool,
    ) -> tuple[bytes, int]:
        """Return a PUBLISH form that uses an outgoing Topic Alias (not cached)."""
        extra = encode_properties({PropertyId.TOPIC_ALIAS: alias})
        return self._encode(
            protocol_level,
            qos,
            retain,
            subscription_identifiers,
            expiry,
            extra,
            topic=self.topic if send_topic else "",
        )

    def _encode(
        self,
        protocol_level: int,
        qos: int,
        retain: bool,
        subscription_identifiers: tuple[int, ...],
        expiry: int | None,
        extra: bytes = b"",
        topic: str | None = None,
    ) -> tuple[bytes, int]:
        if topic is None:
            topic = self.topic
        properties = b""
        if protocol_level == MQTT_5_0:
            properties = self.properties_bytes()
            if extra:
                properties += extra
            if expiry is not None:
                properties += encode_properties(
                    {PropertyId.MESSAGE_EXPIRY_INTERVAL: expiry}
                )
            if subscription_identifiers:
                properties += encode_properties(
                    {PropertyId.SUBSCRIPTION_IDENTIFIER: list(subscription_identifiers)}
                )
        data = encode_publish(
            topic,
            self.payload,
            qos,
            retain,
            False,
            1 if qos else None,
            properties,
            protocol_level,
        )
        if not qos:
            return data, 0
        return data, packet_id_offset(data)


def packet_id_offset(data: bytes) -> int:
    """Return where the packet identifier of an encoded PUBLISH starts."""
    index = 1
    while data[index] & 0x80:
        index += 1
    index += 1
    topic_length = (data[index] << 8) | data[index + 1]
    return index + 2 + topic_length


def with_packet_id(data: bytes, offset: int, packet_id: int, dup: bool) -> bytes:
    """Return PUBLISH bytes with ``packet_id`` and the DUP flag patched in."""
    first = data[0] | 0x08 if dup else data[0]
    return b"".join(
        (
            bytes((first,)),
            data[1:offset],
            packet_id.to_bytes(2, "big"),
            data[offset + 2 :],
        )
    )
