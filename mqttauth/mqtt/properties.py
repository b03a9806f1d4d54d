"""MQTT 5.0 properties: the table of identifiers, and their encoding.

A property block is a Variable Byte Integer length followed by properties,
each an identifier (a Variable Byte Integer) and a value of the identifier's
data type (MQTT 5.0 section 2.2.2). Decoded properties are a dict from the
identifier to the value. User Property, the one property that may repeat
everywhere, is a list of ``(name, value)`` pairs. Subscription Identifier is
a list of ints: it may repeat in PUBLISH and appears at most once in
SUBSCRIBE. Every other property appears at most once, and a repeat is a
Protocol Error. A property that the packet type may not carry, an unknown
identifier and a value cut off are a Malformed Packet (MQTT 5.0 section
2.2.2.2).
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .constants import PacketType, PropertyId, ReasonCode
from .errors import MalformedPacketError, ProtocolError
from .fields import (
    encode_binary,
    encode_string,
    read_binary,
    read_string,
    read_uint16,
    read_uint32,
)
from .varint import decode_variable_byte_integer, encode_variable_byte_integer

#: The place of the Will Properties in a CONNECT payload. It is not a packet
#: type, but it has its own list of allowed properties.
WILL_PROPERTIES = 0


class PropertyType(Enum):
    """The data type of a property value (MQTT 5.0 section 1.5)."""

    BYTE = "Byte"
    TWO_BYTE_INTEGER = "Two Byte Integer"
    FOUR_BYTE_INTEGER = "Four Byte Integer"
    VARIABLE_BYTE_INTEGER = "Variable Byte Integer"
    UTF8_STRING = "UTF-8 Encoded String"
    BINARY_DATA = "Binary Data"
    UTF8_STRING_PAIR = "UTF-8 String Pair"


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """One row of the property table (MQTT 5.0 table 2-4)."""

    identifier: PropertyId
    data_type: PropertyType
    #: Packet types (and ``WILL_PROPERTIES``) that may carry the property.
    allowed_in: frozenset[int]
    #: Packet types in which the property may appear more than once.
    repeatable_in: frozenset[int] = frozenset()
    #: Smallest value that is not a Protocol Error, for the integer types.
    minimum: int = 0
    #: Largest value that is not a Protocol Error, for the integer types.
    maximum: int | None = None
    #: The reason code for a value out of range.
    range_reason_code: ReasonCode = ReasonCode.PROTOCOL_ERROR

    @property
    def name(self) -> str:
        """Return the property's name as the specification writes it."""
        return self.identifier.name.replace("_", " ").title().replace("Qos", "QoS")


_T = PacketType
_ALL_WITH_PROPERTIES = frozenset(
    {
        _T.CONNECT,
        _T.CONNACK,
        _T.PUBLISH,
        WILL_PROPERTIES,
        _T.PUBACK,
        _T.PUBREC,
        _T.PUBREL,
        _T.PUBCOMP,
        _T.SUBSCRIBE,
        _T.SUBACK,
        _T.UNSUBSCRIBE,
        _T.UNSUBACK,
        _T.DISCONNECT,
        _T.AUTH,
    }
)
_MESSAGE = frozenset({_T.PUBLISH, WILL_PROPERTIES})
_ACKS = frozenset({_T.PUBACK, _T.PUBREC, _T.PUBREL, _T.PUBCOMP})

_B = PropertyType.BYTE
_U16 = PropertyType.TWO_BYTE_INTEGER
_U32 = PropertyType.FOUR_BYTE_INTEGER
_VBI = PropertyType.VARIABLE_BYTE_INTEGER
_STR = PropertyType.UTF8_STRING
_BIN = PropertyType.BINARY_DATA
_PAIR = PropertyType.UTF8_STRING_PAIR
_P = PropertyId

#: Every MQTT 5.0 property, keyed by identifier.
PROPERTIES: dict[int, PropertySpec] = {
    spec.identifier: spec
    for spec in (
        PropertySpec(_P.PAYLOAD_FORMAT_INDICATOR, _B, _MESSAGE, maximum=1),
        PropertySpec(_P.MESSAGE_EXPIRY_INTERVAL, _U32, _MESSAGE),
        PropertySpec(_P.CONTENT_TYPE, _STR, _MESSAGE),
        PropertySpec(_P.RESPONSE_TOPIC, _STR, _MESSAGE),
        PropertySpec(_P.CORRELATION_DATA, _BIN, _MESSAGE),
        PropertySpec(
            _P.SUBSCRIPTION_IDENTIFIER,
            _VBI,
            frozenset({_T.PUBLISH, _T.SUBSCRIBE}),
            repeatable_in=frozenset({_T.PUBLISH}),
            minimum=1,
        ),
        PropertySpec(
            _P.SESSION_EXPIRY_INTERVAL,
            _U32,
            frozenset({_T.CONNECT, _T.CONNACK, _T.DISCONNECT}),
        ),
        PropertySpec(_P.ASSIGNED_CLIENT_IDENTIFIER, _STR, frozenset({_T.CONNACK})),
        PropertySpec(_P.SERVER_KEEP_ALIVE, _U16, frozenset({_T.CONNACK})),
        PropertySpec(
            _P.AUTHENTICATION_METHOD,
            _STR,
            frozenset({_T.CONNECT, _T.CONNACK, _T.AUTH}),
        ),
        PropertySpec(
            _P.AUTHENTICATION_DATA,
            _BIN,
            frozenset({_T.CONNECT, _T.CONNACK, _T.AUTH}),
        ),
        PropertySpec(
            _P.REQUEST_PROBLEM_INFORMATION, _B, frozenset({_T.CONNECT}), maximum=1
        ),
        PropertySpec(_P.WILL_DELAY_INTERVAL, _U32, frozenset({WILL_PROPERTIES})),
        PropertySpec(
            _P.REQUEST_RESPONSE_INFORMATION, _B, frozenset({_T.CONNECT}), maximum=1
        ),
        PropertySpec(_P.RESPONSE_INFORMATION, _STR, frozenset({_T.CONNACK})),
        PropertySpec(_P.SERVER_REFERENCE, _STR, frozenset({_T.CONNACK, _T.DISCONNECT})),
        PropertySpec(
            _P.REASON_STRING,
            _STR,
            frozenset(
                {
                    _T.CONNACK,
                    *_ACKS,
                    _T.SUBACK,
                    _T.UNSUBACK,
                    _T.DISCONNECT,
                    _T.AUTH,
                }
            ),
        ),
        PropertySpec(
            _P.RECEIVE_MAXIMUM,
            _U16,
            frozenset({_T.CONNECT, _T.CONNACK}),
            minimum=1,
        ),
        PropertySpec(_P.TOPIC_ALIAS_MAXIMUM, _U16, frozenset({_T.CONNECT, _T.CONNACK})),
        # A Topic Alias of 0 is a Protocol Error with its own reason code,
        # 0x94 Topic Alias invalid (MQTT 5.0 section 3.3.4).
        PropertySpec(
            _P.TOPIC_ALIAS,
            _U16,
            frozenset({_T.PUBLISH}),
            minimum=1,
            range_reason_code=ReasonCode.TOPIC_ALIAS_INVALID,
        ),
        PropertySpec(_P.MAXIMUM_QOS, _B, frozenset({_T.CONNACK}), maximum=1),
        PropertySpec(_P.RETAIN_AVAILABLE, _B, frozenset({_T.CONNACK}), maximum=1),
        PropertySpec(
            _P.USER_PROPERTY,
            _PAIR,
            _ALL_WITH_PROPERTIES,
            repeatable_in=_ALL_WITH_PROPERTIES,
        ),
        PropertySpec(
            _P.MAXIMUM_PACKET_SIZE,
            _U32,
            frozenset({_T.CONNECT, _T.CONNACK}),
            minimum=1,
        ),
        PropertySpec(
            _P.WILDCARD_SUBSCRIPTION_AVAILABLE,
            _B,
            frozenset({_T.CONNACK}),
            maximum=1,
        ),
        PropertySpec(
            _P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            _B,
            frozenset({_T.CONNACK}),
            maximum=1,
        ),
        PropertySpec(
            _P.SHARED_SUBSCRIPTION_AVAILABLE,
            _B,
            frozenset({_T.CONNACK}),
            maximum=1,
        ),
    )
}

#: Properties whose decoded value is a list, one element per occurrence.
LIST_PROPERTIES = frozenset({_P.USER_PROPERTY, _P.SUBSCRIPTION_IDENTIFIER})


def _spec_for(identifier: int) -> PropertySpec:
    spec = PROPERTIES.get(identifier)
    if spec is None:
        raise ValueError(f"unknown property identifier: {identifier!r}")
    return spec


def _encode_value(spec: PropertySpec, value: Any) -> bytes:
    data_type = spec.data_type
    try:
        if data_type is _B:
            return bytes((value,))
        if data_type is _U16:
            return int(value).to_bytes(2, "big")
        if data_type is _U32:
            return int(value).to_bytes(4, "big")
    except (OverflowError, ValueError, TypeError) as error:
        raise ValueError(f"invalid {spec.name} value {value!r}: {error}") from None
    if data_type is _VBI:
        return encode_variable_byte_integer(value)
    if data_type is _STR:
        return encode_string(value)
    if data_type is _BIN:
        return encode_binary(bytes(value))
    name, text = value
    return encode_string(name) + encode_string(text)


def encode_properties(properties: dict[int, Any]) -> bytes:
    """Encode ``properties`` as property bytes without the length prefix.

    User Property takes a list of ``(name, value)`` pairs and Subscription
    Identifier a list of ints (a single int is accepted too). Raises
    ValueError for an unknown identifier or a value its type cannot hold.
    """
    parts: list[bytes] = []
    for identifier, value in properties.items():
        spec = _spec_for(identifier)
        prefix = encode_variable_byte_integer(identifier)
        if identifier in LIST_PROPERTIES and not isinstance(value, int):
            for item in value:
                parts.append(prefix)
                parts.append(_encode_value(spec, item))
        else:
            parts.append(prefix)
            parts.append(_encode_value(spec, value))
    return b"".join(parts)


def encode_property_block(properties: dict[int, Any]) -> bytes:
    """Encode ``properties`` with their Variable Byte Integer length prefix."""
    if not properties:
        return b"\x00"
    body = encode_properties(properties)
    return encode_variable_byte_integer(len(body)) + body


def _read_byte(data: bytes, offset: int, end: int) -> tuple[int, int]:
    if offset >= end:
        raise MalformedPacketError("Byte property cut off by the end of properties")
    return data[offset], offset + 1


def _read_uint16(data: bytes, offset: int, end: int) -> tuple[int, int]:
    return read_uint16(data, offset, end), offset + 2


def _read_uint32(data: bytes, offset: int, end: int) -> tuple[int, int]:
    return read_uint32(data, offset, end), offset + 4


def _read_pair(data: bytes, offset: int, end: int) -> tuple[tuple[str, str], int]:
    name, offset = read_string(data, offset, end)
    value, offset = read_string(data, offset, end)
    return (name, value), offset


_READERS: dict[PropertyType, Callable[[bytes, int, int], tuple[Any, int]]] = {
    _B: _read_byte,
    _U16: _read_uint16,
    _U32: _read_uint32,
    _VBI: decode_variable_byte_integer,
    _STR: read_string,
    _BIN: read_binary,
    _PAIR: _read_pair,
}

#: Per identifier: the value reader and the spec.
_DECODE_TABLE: dict[
    int, tuple[Callable[[bytes, int, int], tuple[Any, int]], PropertySpec]
] = {
    identifier: (_READERS[spec.data_type], spec)
    for identifier, spec in PROPERTIES.items()
}


def _check_range(spec: PropertySpec, value: int) -> None:
    if value < spec.minimum or (spec.maximum is not None and value > spec.maximum):
        raise ProtocolError(
            f"{spec.name} has the invalid value {value!r}", spec.range_reason_code
        )


def decode_properties_in(
    data: bytes, offset: int, end: int, context: int | None
) -> dict[int, Any]:
    """Decode the properties in ``data[offset:end]`` (no length prefix).

    ``context`` is the packet type or ``WILL_PROPERTIES`` whose rules apply.
    A property not allowed there, an unknown identifier or a value cut off is
    a Malformed Packet. A property repeated where it may not be, or a value
    out of its range (such as Receive Maximum 0), is a Protocol Error. With
    ``context`` None, the packet-type rules are skipped.
    """
    properties: dict[int, Any] = {}
    while offset < end:
        identifier = data[offset]
        entry = _DECODE_TABLE.get(identifier)
        if entry is None:
            raise MalformedPacketError(
                f"unknown property identifier 0x{identifier:02X}"
            )
        reader, spec = entry
        value, offset = reader(data, offset + 1, end)
        if offset > end:
            raise MalformedPacketError(f"{spec.name} runs past the property block")
        if context is not None and context not in spec.allowed_in:
            raise MalformedPacketError(f"{spec.name} is not allowed in this packet")
        if isinstance(value, int):
            _check_range(spec, value)
        if identifier in LIST_PROPERTIES:
            existing = properties.get(identifier)
            if existing is None:
                properties[identifier] = [value]
                continue
            if context is not None and context not in spec.repeatable_in:
                raise ProtocolError(f"{spec.name} appears more than once")
            existing.append(value)
        elif identifier in properties:
            raise ProtocolError(f"{spec.name} appears more than once")
        else:
            properties[identifier] = value
    return properties


def decode_property_block(
    data: bytes, offset: int, end: int, context: int
) -> tuple[dict[int, Any], int]:
    """Decode the length-prefixed property block at ``offset``.

    Return the properties and the offset after the block. A length that runs
    past ``end`` is a Malformed Packet.
    """
    length, offset = decode_variable_byte_integer(data, offset, end)
    stop = offset + length
    if stop > end:
        raise MalformedPacketError("property length exceeds the rest of the packet")
    if length == 0:
        return {}, stop
    return decode_properties_in(data, offset, stop, context), stop


def decode_properties(data: bytes) -> dict[int, Any]:
    """Decode property bytes without the length prefix.

    This is the inverse of ``encode_properties``. It checks the encoding
    only, because the packet type is not known here.
    Raises MalformedPacketError for bytes that are not a property list.
    """
    data = bytes(data)
    return decode_properties_in(data, 0, len(data), None)
