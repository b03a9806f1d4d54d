"""Readers and writers for the MQTT data representations.

Two Byte Integers are big-endian. UTF-8 Encoded Strings and Binary Data carry
a two-byte length prefix. A string must be well-formed UTF-8, must not encode
a surrogate (U+D800..U+DFFF) and must not contain U+0000 (MQTT 3.1.1 section
1.5.3, MQTT 5.0 section 1.5.4). A string that breaks one of these rules makes
the packet malformed.
Python's strict UTF-8 decoder already rejects surrogates, overlong forms and
code points above U+10FFFF.
"""

from .errors import MalformedPacketError

#: The largest length a two-byte length prefix can state.
MAX_FIELD_LENGTH = 65_535


def read_uint16(data: bytes, offset: int, end: int) -> int:
    """Return the Two Byte Integer at ``offset``; raise if it is cut off."""
    if offset + 2 > end:
        raise MalformedPacketError("Two Byte Integer cut off by the end of packet")
    return (data[offset] << 8) | data[offset + 1]


def read_uint32(data: bytes, offset: int, end: int) -> int:
    """Return the Four Byte Integer at ``offset``; raise if it is cut off."""
    if offset + 4 > end:
        raise MalformedPacketError("Four Byte Integer cut off by the end of packet")
    return int.from_bytes(data[offset : offset + 4], "big")


def read_binary(data: bytes, offset: int, end: int) -> tuple[bytes, int]:
    """Return the Binary Data at ``offset`` and the offset after it."""
    if offset + 2 > end:
        raise MalformedPacketError("length prefix cut off by the end of packet")
    stop = offset + 2 + ((data[offset] << 8) | data[offset + 1])
    if stop > end:
        raise MalformedPacketError("field longer than the rest of the packet")
    return bytes(data[offset + 2 : stop]), stop


def decode_utf8(raw: bytes) -> str:
    """Decode an MQTT UTF-8 string body; raise MalformedPacketError if invalid."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedPacketError(f"invalid UTF-8 in string: {error}") from None
    if "\x00" in text:
        raise MalformedPacketError("string contains U+0000")
    return text


def read_string(data: bytes, offset: int, end: int) -> tuple[str, int]:
    """Return the UTF-8 Encoded String at ``offset`` and the offset after it."""
    if offset + 2 > end:
        raise MalformedPacketError("length prefix cut off by the end of packet")
    stop = offset + 2 + ((data[offset] << 8) | data[offset + 1])
    if stop > end:
        raise MalformedPacketError("string longer than the rest of the packet")
    return decode_utf8(data[offset + 2 : stop]), stop


def encode_binary(value: bytes) -> bytes:
    """Prefix ``value`` with its two-byte length; raise ValueError if too long."""
    if len(value) > MAX_FIELD_LENGTH:
        raise ValueError(f"field of {len(value)} bytes exceeds 65535 bytes")
    return len(value).to_bytes(2, "big") + value


def encode_string(value: str) -> bytes:
    """Encode ``value`` as a UTF-8 Encoded String.

    Raises ValueError for U+0000, a lone surrogate or more than 65,535 bytes,
    because the receiver would reject the packet as malformed.
    """
    if "\x00" in value:
        raise ValueError(f"string contains U+0000: {value!r}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"string cannot be encoded as UTF-8: {error}") from None
    return encode_binary(raw)
