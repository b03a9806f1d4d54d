"""Decoders for the variable header and payload of each control packet type.

Each decoder takes the fixed header's flag nibble, the bytes of one whole
packet body ``data[start:end]`` and the protocol level, and returns the typed
packet or raises an MQTTError subclass. The fixed header itself, the flag
bits that are fixed per type, and the packet size are checked by
:class:`mqttauth.mqtt.codec.Decoder` before a decoder runs.
"""

from collections.abc import Callable
from typing import Any

from .constants import MQTT_3_1_1, MQTT_5_0, PROTOCOL_NAME, PacketType, PropertyId
from .errors import (
    MalformedPacketError,
    ProtocolError,
    TopicNameInvalidError,
    UnsupportedProtocolVersionError,
)
from .fields import read_binary, read_string
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
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from .properties import WILL_PROPERTIES, decode_property_block
from .reason_codes import (
    CONNACK_RETURN_CODES_4,
    REASON_CODES_5,
    SUBACK_RETURN_CODES_4,
)

_T = PacketType
_AUTHENTICATION_METHOD = PropertyId.AUTHENTICATION_METHOD
_AUTHENTICATION_DATA = PropertyId.AUTHENTICATION_DATA
_RESPONSE_TOPIC = PropertyId.RESPONSE_TOPIC
_TOPIC_ALIAS = PropertyId.TOPIC_ALIAS

Decode = Callable[[int, bytes, int, int, int], Packet]


def _check_end(offset: int, end: int, last_field: str) -> None:
    if offset != end:
        raise MalformedPacketError(
            f"{end - offset} unexpected bytes after the {last_field}"
        )


def _read_packet_id(data: bytes, offset: int, end: int, packet_name: str) -> int:
    if offset + 2 > end:
        raise MalformedPacketError(f"{packet_name} too short for a Packet Identifier")
    packet_id = (data[offset] << 8) | data[offset + 1]
    if packet_id == 0:
        raise ProtocolError(f"{packet_name} with Packet Identifier 0")
    return packet_id


def _check_reason_code(packet_type: int, reason_code: int) -> None:
    if reason_code not in REASON_CODES_5[packet_type]:
        name = PacketType(packet_type).name
        raise MalformedPacketError(
            f"{name} with invalid reason code 0x{reason_code:02X}"
        )


def _check_message_properties(properties: dict[int, Any]) -> None:
    response_topic = properties.get(_RESPONSE_TOPIC)
    if response_topic is not None and (
        "+" in response_topic or "#" in response_topic or not response_topic
    ):
        raise ProtocolError(f"Response Topic is not a topic name: {response_topic!r}")


def _check_authentication(properties: dict[int, Any], packet_name: str) -> None:
    if _AUTHENTICATION_DATA in properties and _AUTHENTICATION_METHOD not in properties:
        raise ProtocolError(
            f"{packet_name} has Authentication Data but no Authentication Method"
        )


def decode_connect(
    flags: int, data: bytes, start: int, end: int, level: int
) -> Connect:
    """Decode a CONNECT body. The packet names its own level, so ``level`` is
    ignored.

    A protocol name other than "MQTT" or a level other than 4 and 5 raises
    UnsupportedProtocolVersionError with the level the client sent.
    """
    protocol_name, offset = read_string(data, start, end)
    if offset >= end:
        raise MalformedPacketError("CONNECT cut off before the protocol level")
    level = data[offset]
    if protocol_name != PROTOCOL_NAME or level not in (MQTT_3_1_1, MQTT_5_0):
        raise UnsupportedProtocolVersionError(
            f"unsupported protocol {protocol_name!r} level {level}",
            protocol_level=level,
        )
    if offset + 4 > end:
        raise MalformedPacketError("CONNECT cut off in the variable header")
    connect_flags = data[offset + 1]
    keep_alive = (data[offset + 2] << 8) | data[offset + 3]
    offset += 4
    has_will, will_qos, will_retain = _check_connect_flags(connect_flags, level)
    properties: dict[int, Any] = {}
    if level == MQTT_5_0:
        properties, offset = decode_property_block(data, offset, end, _T.CONNECT)
        _check_authentication(properties, "CONNECT")
    client_id, offset = read_string(data, offset, end)
    will = None
    if has_will:
        will_properties: dict[int, Any] = {}
        if level == MQTT_5_0:
            will_properties, offset = decode_property_block(
                data, offset, end, WILL_PROPERTIES
            )
            _check_message_properties(will_properties)
        will_topic, offset = read_string(data, offset, end)
        if not will_topic or "+" in will_topic or "#" in will_topic:
            raise TopicNameInvalidError(f"invalid Will Topic {will_topic!r}")
        will_payload, offset = read_binary(data, offset, end)
        will = Will(will_topic, will_payload, will_qos, will_retain, will_properties)
    username = None
    if connect_flags & 0x80:
        username, offset = read_string(data, offset, end)
    password = None
    if connect_flags & 0x40:
        password, offset = read_binary(data, offset, end)
    _check_end(offset, end, "CONNECT payload")
    return Connect(
        client_id,
        level,
        bool(connect_flags & 0x02),
        keep_alive,
        username,
        password,
        will,
        properties,
        protocol_name,
    )


def _check_connect_flags(connect_flags: int, level: int) -> tuple[bool, int, bool]:
    """Check the CONNECT flags and return the will flag, QoS and retain."""
    if connect_flags & 0x01:
        raise MalformedPacketError("CONNECT reserved flag is set")
    has_will = bool(connect_flags & 0x04)
    will_qos = (connect_flags >> 3) & 0x03
    will_retain = bool(connect_flags & 0x20)
    if will_qos == 3:
        raise MalformedPacketError("CONNECT with Will QoS 3")
    if not has_will and (will_qos or will_retain):
        raise MalformedPacketError("CONNECT with Will QoS or Will Retain but no will")
    if level == MQTT_3_1_1 and connect_flags & 0xC0 == 0x40:
        raise MalformedPacketError("CONNECT with a password but no user name")
    return has_will, will_qos, will_retain


def decode_connack(
    flags: int, data: bytes, start: int, end: int, level: int
) -> Connack:
    """Decode a CONNACK body. On 3.1.1 ``reason_code`` is the return code."""
    if end - start < 2:
        raise MalformedPacketError("CONNACK shorter than two bytes")
    acknowledge_flags = data[start]
    reason_code = data[start + 1]
    if acknowledge_flags & 0xFE:
        raise MalformedPacketError("CONNACK reserved flags are set")
    session_present = bool(acknowledge_flags)
    properties: dict[int, Any] = {}
    if level == MQTT_5_0:
        _check_reason_code(_T.CONNACK, reason_code)
        properties, offset = decode_property_block(data, start + 2, end, _T.CONNACK)
        _check_end(offset, end, "CONNACK properties")
        _check_authentication(properties, "CONNACK")
    else:
        _check_end(start + 2, end, "CONNACK return code")
        if reason_code not in CONNACK_RETURN_CODES_4:
            raise MalformedPacketError(
                f"CONNACK with reserved return code {reason_code}"
            )
    if session_present and reason_code:
        raise ProtocolError("CONNACK with Session Present on a refused connection")
    return Connack(reason_code, session_present, properties)


def decode_publish(
    flags: int, data: bytes, start: int, end: int, level: int
) -> Publish:
    """Decode a PUBLISH body, including the topic name rules."""
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacketError("PUBLISH with QoS 3")
    dup = bool(flags & 0x08)
    if dup and not qos:
        raise MalformedPacketError("PUBLISH with DUP set on QoS 0")
    topic, offset = read_string(data, start, end)
    if "+" in topic or "#" in topic:
        raise TopicNameInvalidError(f"topic name contains a wildcard: {topic!r}")
    packet_id = None
    if qos:
        packet_id = _read_packet_id(data, offset, end, "PUBLISH")
        offset += 2
    properties: dict[int, Any] = {}
    if level == MQTT_5_0:
        properties, offset = decode_property_block(data, offset, end, _T.PUBLISH)
        if properties:
            _check_message_properties(properties)
        if not topic and _TOPIC_ALIAS not in properties:
            raise ProtocolError("PUBLISH with an empty topic name and no Topic Alias")
    elif not topic:
        raise TopicNameInvalidError("PUBLISH with an empty topic name")
    return Publish(
        topic, data[offset:end], qos, bool(flags & 0x01), dup, packet_id, properties
    )


_ACK_CLASSES: dict[int, type[Puback | Pubrec | Pubrel | Pubcomp]] = {
    _T.PUBACK: Puback,
    _T.PUBREC: Pubrec,
    _T.PUBREL: Pubrel,
    _T.PUBCOMP: Pubcomp,
}


def _decoder_for_ack(packet_type: int) -> Decode:
    packet_class = _ACK_CLASSES[packet_type]
    name = PacketType(packet_type).name

    def decode_ack(flags: int, data: bytes, start: int, end: int, level: int) -> Packet:
        packet_id = _read_packet_id(data, start, end, name)
        length = end - start
        if level != MQTT_5_0:
            _check_end(start + 2, end, f"{name} Packet Identifier")
            return packet_class(packet_id)
        if length == 2:
            return packet_class(packet_id)
        reason_code = data[start + 2]
        _check_reason_code(packet_type, reason_code)
        if length == 3:
            return packet_class(packet_id, reason_code)
        properties, offset = decode_property_block(data, start + 3, end, packet_type)
        _check_end(offset, end, f"{name} properties")
        return packet_class(packet_id, reason_code, properties)

    decode_ack.__doc__ = f"Decode a {name} body."
    return decode_ack


def decode_subscribe(
    flags: int, data: bytes, start: int, end: int, level: int
) -> Subscribe:
    """Decode a SUBSCRIBE body.

    Topic filter syntax is not checked here: the broker checks each filter,
    because on 5.0 a bad filter gets SUBACK 0x8F, not a closed connection.
    """
    packet_id = _read_packet_id(data, start, end, "SUBSCRIBE")
    offset = start + 2
    properties: dict[int, Any] = {}
    reserved_mask = 0xFC
    if level == MQTT_5_0:
        properties, offset = decode_property_block(data, offset, end, _T.SUBSCRIBE)
        reserved_mask = 0xC0
    subscriptions = []
    while offset < end:
        topic_filter, offset = read_string(data, offset, end)
        if offset >= end:
            raise MalformedPacketError("SUBSCRIBE topic filter without options")
        options = data[offset]
        offset += 1
        if options & reserved_mask:
            raise MalformedPacketError("SUBSCRIBE options with reserved bits set")
        qos = options & 0x03
        if qos == 3:
            raise MalformedPacketError("SUBSCRIBE with QoS 3")
        retain_handling = (options >> 4) & 0x03
        if retain_handling == 3:
            raise ProtocolError("SUBSCRIBE with Retain Handling 3")
        if options & 0x04 and topic_filter.startswith("$share/"):
            raise ProtocolError("SUBSCRIBE with No Local on a shared subscription")
        subscriptions.append(
            Subscription(
                topic_filter,
                qos,
                bool(options & 0x04),
                bool(options & 0x08),
                retain_handling,
            )
        )
    if not subscriptions:
        raise ProtocolError("SUBSCRIBE without topic filters")
    return Subscribe(packet_id, subscriptions, properties)


def _read_reason_codes(
    data: bytes, offset: int, end: int, allowed: frozenset[int], packet_name: str
) -> list[int]:
    codes = list(data[offset:end])
    if not codes:
        raise MalformedPacketError(f"{packet_name} without reason codes")
    for code in codes:
        if code not in allowed:
            raise MalformedPacketError(
                f"{packet_name} with invalid reason code 0x{code:02X}"
            )
    return codes


def decode_suback(flags: int, data: bytes, start: int, end: int, level: int) -> Suback:
    """Decode a SUBACK body: one granted QoS or failure code per filter."""
    packet_id = _read_packet_id(data, start, end, "SUBACK")
    offset = start + 2
    properties: dict[int, Any] = {}
    allowed = SUBACK_RETURN_CODES_4
    if level == MQTT_5_0:
        properties, offset = decode_property_block(data, offset, end, _T.SUBACK)
        allowed = REASON_CODES_5[_T.SUBACK]
    codes = _read_reason_codes(data, offset, end, allowed, "SUBACK")
    return Suback(packet_id, codes, properties)


def decode_unsubscribe(
    flags: int, data: bytes, start: int, end: int, level: int
) -> Unsubscribe:
    """Decode an UNSUBSCRIBE body (filter syntax is left to the broker)."""
    packet_id = _read_packet_id(data, start, end, "UNSUBSCRIBE")
    offset = start + 2
    properties: dict[int, Any] = {}
    if level == MQTT_5_0:
        properties, offset = decode_property_block(data, offset, end, _T.UNSUBSCRIBE)
    topic_filters = []
    while offset < end:
        topic_filter, offset = read_string(data, offset, end)
        topic_filters.append(topic_filter)
    if not topic_filters:
        raise ProtocolError("UNSUBSCRIBE without topic filters")
    return Unsubscribe(packet_id, topic_filters, properties)


def decode_unsuback(
    flags: int, data: bytes, start: int, end: int, level: int
) -> Unsuback:
    """Decode an UNSUBACK body. On 3.1.1 it has only the Packet Identifier."""
    packet_id = _read_packet_id(data, start, end, "UNSUBACK")
    if level != MQTT_5_0:
        _check_end(start + 2, end, "UNSUBACK Packet Identifier")
        return Unsuback(packet_id)
    properties, offset = decode_property_block(data, start + 2, end, _T.UNSUBACK)
    allowed = REASON_CODES_5[_T.UNSUBACK]
    codes = _read_reason_codes(data, offset, end, allowed, "UNSUBACK")
    return Unsuback(packet_id, codes, properties)


def decode_pingreq(
    flags: int, data: bytes, start: int, end: int, level: int
) -> Pingreq:
    """Decode a PINGREQ, which has no body."""
    _check_end(start, end, "PINGREQ fixed header")
    return Pingreq()


def decode_pingresp(
    flags: int, data: bytes, start: int, end: int, level: int
) -> Pingresp:
    """Decode a PINGRESP, which has no body."""
    _check_end(start, end, "PINGRESP fixed header")
    return Pingresp()


def decode_disconnect(
    flags: int, data: bytes, start: int, end: int, level: int
) -> Disconnect:
    """Decode a DISCONNECT. On 5.0 reason code and properties may be omitted."""
    if level != MQTT_5_0:
        _check_end(start, end, "DISCONNECT fixed header")
        return Disconnect()
    if start == end:
        return Disconnect()
    reason_code = data[start]
    _check_reason_code(_T.DISCONNECT, reason_code)
    if end - start == 1:
        return Disconnect(reason_code)
    properties, offset = decode_property_block(data, start + 1, end, _T.DISCONNECT)
    _check_end(offset, end, "DISCONNECT properties")
    return Disconnect(reason_code, properties)


def decode_auth(flags: int, data: bytes, start: int, end: int, level: int) -> Auth:
    """Decode an AUTH body (MQTT 5.0 only).

    An empty body means Success without properties. Otherwise the reason
    code and a property block follow, and leaving out the Authentication
    Method is a Protocol Error (MQTT 5.0 section 3.15.2.2.2).
    """
    if level != MQTT_5_0:
        raise MalformedPacketError("AUTH packet type is reserved in MQTT 3.1.1")
    if start == end:
        return Auth()
    reason_code = data[start]
    _check_reason_code(_T.AUTH, reason_code)
    properties, offset = decode_property_block(data, start + 1, end, _T.AUTH)
    _check_end(offset, end, "AUTH properties")
    if _AUTHENTICATION_METHOD not in properties:
        raise ProtocolError("AUTH without an Authentication Method")
    return Auth(reason_code, properties)


#: The body decoder of every packet type, indexed by the type's value.
DECODERS: dict[int, Decode] = {
    _T.CONNECT: decode_connect,
    _T.CONNACK: decode_connack,
    _T.PUBLISH: decode_publish,
    _T.PUBACK: _decoder_for_ack(_T.PUBACK),
    _T.PUBREC: _decoder_for_ack(_T.PUBREC),
    _T.PUBREL: _decoder_for_ack(_T.PUBREL),
    _T.PUBCOMP: _decoder_for_ack(_T.PUBCOMP),
    _T.SUBSCRIBE: decode_subscribe,
    _T.SUBACK: decode_suback,
    _T.UNSUBSCRIBE: decode_unsubscribe,
    _T.UNSUBACK: decode_unsuback,
    _T.PINGREQ: decode_pingreq,
    _T.PINGRESP: decode_pingresp,
    _T.DISCONNECT: decode_disconnect,
    _T.AUTH: decode_auth,
}

#: The required flag nibble per packet type. PUBLISH flags are checked apart.
FIXED_FLAGS: dict[int, int] = {
    packet_type: 0 for packet_type in DECODERS if packet_type != _T.PUBLISH
}
FIXED_FLAGS.update({_T.PUBREL: 0x02, _T.SUBSCRIBE: 0x02, _T.UNSUBSCRIBE: 0x02})
