"""Encoders from typed packets to bytes, for both protocol levels.

Fields that exist only in MQTT 5.0 (reason codes, properties) are left out
when encoding for 3.1.1. A packet that no receiver could accept, such as a
QoS 1 PUBLISH without a Packet Identifier, raises ValueError: that is a bug
in the caller, not bad input from the network.
"""

from collections.abc import Callable
from struct import Struct
from typing import Any

from .constants import MQTT_5_0, PacketType
from .fields import encode_binary, encode_string
from .packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from .properties import encode_properties, encode_property_block
from .varint import MAX_VARIABLE_BYTE_INTEGER, encode_variable_byte_integer

_T = PacketType
_UINT16 = Struct(">H")


def _frame(first_byte: int, body: bytes) -> bytes:
    length = len(body)
    if length > MAX_VARIABLE_BYTE_INTEGER:
        raise ValueError(f"packet body of {length} bytes exceeds 268435455 bytes")
    return bytes((first_byte,)) + encode_variable_byte_integer(length) + body


def _packet_id_bytes(packet_id: int | None, packet_name: str) -> bytes:
    if packet_id is None or not 0 < packet_id < 65_536:
        raise ValueError(
            f"{packet_name} needs a Packet Identifier 1..65535: {packet_id!r}"
        )
    return _UINT16.pack(packet_id)


def _encode_connect(packet: Connect, level: int) -> tuple[int, bytes]:
    flags = 0x02 if packet.clean_start else 0
    will = packet.will
    parts = [
        encode_string(packet.protocol_name),
        bytes((level,)),
        b"",
        _UINT16.pack(packet.keep_alive),
    ]
    if level == MQTT_5_0:
        parts.append(encode_property_block(packet.properties))
    parts.append(encode_string(packet.client_id))
    if will is not None:
        if will.qos not in (0, 1, 2):
            raise ValueError(f"Will QoS must be 0, 1 or 2: {will.qos!r}")
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        if level == MQTT_5_0:
            parts.append(encode_property_block(will.properties))
        parts.append(encode_string(will.topic))
        parts.append(encode_binary(will.payload))
    if packet.username is not None:
        flags |= 0x80
        parts.append(encode_string(packet.username))
    if packet.password is not None:
        if packet.username is None and level != MQTT_5_0:
            raise ValueError("MQTT 3.1.1 CONNECT cannot carry a password alone")
        flags |= 0x40
        parts.append(encode_binary(packet.password))
    parts[2] = bytes((flags,))
    return 0x10, b"".join(parts)


def _encode_connack(packet: Connack, level: int) -> tuple[int, bytes]:
    body = bytes((1 if packet.session_present else 0, packet.reason_code))
    if level == MQTT_5_0:
        body += encode_property_block(packet.properties)
    return 0x20, body


def _encode_ack(
    packet: Puback | Pubrec | Pubrel | Pubcomp, level: int
) -> tuple[int, bytes]:
    first = packet.packet_type << 4
    if packet.packet_type == _T.PUBREL:
        first |= 0x02
    body = _packet_id_bytes(packet.packet_id, packet.packet_type.name)
    if level == MQTT_5_0 and (packet.reason_code or packet.properties):
        body += bytes((packet.reason_code,))
        if packet.properties:
            body += encode_property_block(packet.properties)
    return first, body


def _encode_subscribe(packet: Subscribe, level: int) -> tuple[int, bytes]:
    if not packet.subscriptions:
        raise ValueError("SUBSCRIBE needs at least one topic filter")
    parts = [_packet_id_bytes(packet.packet_id, "SUBSCRIBE")]
    if level == MQTT_5_0:
        parts.append(encode_property_block(packet.properties))
    for subscription in packet.subscriptions:
        options = subscription.qos
        if level == MQTT_5_0:
            options |= (
                (0x04 if subscription.no_local else 0)
                | (0x08 if subscription.retain_as_published else 0)
                | (subscription.retain_handling << 4)
            )
        parts.append(encode_string(subscription.topic_filter))
        parts.append(bytes((options,)))
    return 0x82, b"".join(parts)


def _encode_suback(packet: Suback, level: int) -> tuple[int, bytes]:
    body = _packet_id_bytes(packet.packet_id, "SUBACK")
    if level == MQTT_5_0:
        body += encode_property_block(packet.properties)
    return 0x90, body + bytes(packet.reason_codes)


def _encode_unsubscribe(packet: Unsubscribe, level: int) -> tuple[int, bytes]:
    if not packet.topic_filters:
        raise ValueError("UNSUBSCRIBE needs at least one topic filter")
    parts = [_packet_id_bytes(packet.packet_id, "UNSUBSCRIBE")]
    if level == MQTT_5_0:
        parts.append(encode_property_block(packet.properties))
    parts.extend(encode_string(topic_filter) for topic_filter in packet.topic_filters)
    return 0xA2, b"".join(parts)


def _encode_unsuback(packet: Unsuback, level: int) -> tuple[int, bytes]:
    body = _packet_id_bytes(packet.packet_id, "UNSUBACK")
    if level == MQTT_5_0:
        body += encode_property_block(packet.properties) + bytes(packet.reason_codes)
    return 0xB0, body


def _encode_pingreq(packet: Pingreq, level: int) -> tuple[int, bytes]:
    return 0xC0, b""


def _encode_pingresp(packet: Pingresp, level: int) -> tuple[int, bytes]:
    return 0xD0, b""


def _encode_disconnect(packet: Disconnect, level: int) -> tuple[int, bytes]:
    if level != MQTT_5_0 or (not packet.reason_code and not packet.properties):
        return 0xE0, b""
    body = bytes((packet.reason_code,))
    if packet.properties:
        body += encode_property_block(packet.properties)
    return 0xE0, body


def _encode_auth(packet: Auth, level: int) -> tuple[int, bytes]:
    if level != MQTT_5_0:
        raise ValueError("AUTH exists only in MQTT 5.0")
    if not packet.reason_code and not packet.properties:
        return 0xF0, b""
    return 0xF0, bytes((packet.reason_code,)) + encode_property_block(packet.properties)


_ENCODERS: dict[type[Any], Callable[[Any, int], tuple[int, bytes]]] = {
    Connect: _encode_connect,
    Connack: _encode_connack,
    Puback: _encode_ack,
    Pubrec: _encode_ack,
    Pubrel: _encode_ack,
    Pubcomp: _encode_ack,
    Subscribe: _encode_subscribe,
    Suback: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    Unsuback: _encode_unsuback,
    Pingreq: _encode_pingreq,
    Pingresp: _encode_pingresp,
    Disconnect: _encode_disconnect,
    Auth: _encode_auth,
}


def encode(packet: Packet, protocol_level: int) -> bytes:
    """Encode ``packet`` as ``protocol_level`` (4 or 5) bytes, fixed header
    included.

    A CONNECT is written with ``protocol_level``, not its own field. Raises
    ValueError for a packet that cannot be encoded.
    """
    if type(packet) is Publish:
        if "\x00" in packet.topic:
            raise ValueError(f"topic contains U+0000: {packet.topic!r}")
        properties = packet.properties
        return encode_publish(
            packet.topic,
            packet.payload,
            packet.qos,
            packet.retain,
            packet.dup,
            packet.packet_id,
            encode_properties(properties) if properties else b"",
            protocol_level,
        )
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        raise ValueError(f"not an MQTT packet: {packet!r}")
    first, body = encoder(packet, protocol_level)
    return _frame(first, body)


def _short_header(topic_length: int, has_packet_id: bool, level: int) -> Struct:
    """Return the cached Struct for a PUBLISH header with a one-byte length.

    The Struct packs the first byte, the Remaining Length, the topic, the
    Packet Identifier when there is one, and on 5.0 a Property Length of 0.
    """
    key = (topic_length, has_packet_id, level == MQTT_5_0)
    header = _SHORT_HEADERS.get(key)
    if header is None:
        layout = f">BBH{topic_length}s"
        if has_packet_id:
            layout += "H"
        if level == MQTT_5_0:
            layout += "B"
        header = _SHORT_HEADERS[key] = Struct(layout)
    return header


#: Structs by (topic length, has Packet Identifier, is 5.0). A one-byte
#: Remaining Length limits the topic to under 128 bytes, so this stays small.
_SHORT_HEADERS: dict[tuple[int, bool, bool], Struct] = {}


def encode_publish(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int | None,
    properties: bytes,
    protocol_level: int,
) -> bytes:
    """Encode a PUBLISH from its fields, for the broker's delivery loop.

    ``properties`` is already-encoded property bytes without the length
    prefix (``b""`` for none, see ``encode_properties``); it is ignored on
    level 4. The topic is encoded but not validated: it is expected to come
    from a decoded packet or ``validate_topic_name``. Raises ValueError for
    QoS 1 or 2 without a Packet Identifier, DUP on QoS 0, a QoS other than
    0, 1 and 2, and a topic of more than 65,535 bytes.
    """
    raw_topic = topic.encode("utf-8")
    topic_length = len(raw_topic)
    if qos == 0:
        if dup:
            raise ValueError("PUBLISH with DUP set on QoS 0")
        length = topic_length + 2 + len(payload)
    elif qos == 1 or qos == 2:
        if packet_id is None or not 0 < packet_id < 65_536:
            raise ValueError(
                f"QoS {qos} PUBLISH needs a Packet Identifier 1..65535: {packet_id!r}"
            )
        length = topic_length + 4 + len(payload)
    else:
        raise ValueError(f"PUBLISH QoS must be 0, 1 or 2: {qos!r}")
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    is_5 = protocol_level == MQTT_5_0
    if is_5:
        length += len(properties) + 1
    if length < 128 and not (is_5 and properties):
        header = _short_header(topic_length, qos > 0, protocol_level)
        if qos and is_5:
            fields = header.pack(first, length, topic_length, raw_topic, packet_id, 0)
        elif qos:
            fields = header.pack(first, length, topic_length, raw_topic, packet_id)
        elif is_5:
            fields = header.pack(first, length, topic_length, raw_topic, 0)
        else:
            fields = header.pack(first, length, topic_length, raw_topic)
        return fields + payload
    if topic_length > 65_535:
        raise ValueError(f"topic of {topic_length} bytes exceeds 65535 bytes")
    parts = [_UINT16.pack(topic_length), raw_topic]
    if qos:
        parts.append(_UINT16.pack(packet_id))
    if is_5:
        property_length = encode_variable_byte_integer(len(properties))
        length += len(property_length) - 1
        parts.append(property_length)
        parts.append(properties)
    parts.append(payload)
    if length > MAX_VARIABLE_BYTE_INTEGER:
        raise ValueError(f"PUBLISH body of {length} bytes exceeds 268435455 bytes")
    return bytes((first,)) + encode_variable_byte_integer(length) + b"".join(parts)


__all__ = ["encode", "encode_properties", "encode_publish"]
