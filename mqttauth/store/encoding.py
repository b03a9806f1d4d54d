"""A tagged binary encoding for property dicts and identity attributes.

The SQLite store keeps MQTT 5.0 properties and a will's identity attributes
as one BLOB each.  The encoding keeps the Python type of every value, so a
value reads back equal to what was written and of the same type.  ``bytes``
stays ``bytes`` (Correlation Data) and ``str`` stays ``str``.  A list of
``(name, value)`` tuples stays a list of tuples (User Property), and ints of
any size stay exact.  ``bytearray`` and ``memoryview`` values read back as
``bytes``.  An ``int`` subclass such as an ``IntEnum`` reads back as a plain
``int``, except that the keys of a property dict come back as
:class:`~mqttauth.mqtt.constants.PropertyId` where the id is known.

Each value is a one-byte tag and a body.  Lengths, counts and ints are
unsigned LEB128 varints (ints zigzag-mapped first); floats are 8-byte IEEE
754 big-endian doubles; text is UTF-8, with lone surrogates passed through.
"""

from __future__ import annotations

import struct
from typing import Any

from mqttauth.mqtt.constants import PropertyId

_NONE = 0x00
_FALSE = 0x01
_TRUE = 0x02
_INT = 0x03
_FLOAT = 0x04
_STR = 0x05
_BYTES = 0x06
_LIST = 0x07
_TUPLE = 0x08
_DICT = 0x09

_DOUBLE = struct.Struct(">d")
_PROPERTY_IDS: dict[int, PropertyId] = {member.value: member for member in PropertyId}


class EncodingError(ValueError):
    """A value cannot be encoded, or stored bytes are not a valid encoding."""


def encode_properties(properties: dict[int, Any]) -> bytes:
    """Encode a property dict; an empty dict becomes ``b""``."""
    if not properties:
        return b""
    return encode_value(properties)


def decode_properties(data: bytes | None) -> dict[int, Any]:
    """Decode what :func:`encode_properties` wrote, with PropertyId keys."""
    if not data:
        return {}
    value = decode_value(data)
    if type(value) is not dict:
        raise EncodingError(f"expected an encoded dict, found {type(value).__name__}")
    properties: dict[int, Any] = {}
    for key, item in value.items():
        known = _PROPERTY_IDS.get(key)
        properties[key if known is None else known] = item
    return properties


def encode_value(value: Any) -> bytes:
    """Encode ``value`` and everything it contains.

    Raises :class:`EncodingError` for a type outside None, bool, int, float,
    str, bytes (and bytearray, memoryview), list, tuple and dict.
    """
    out = bytearray()
    _write(out, value)
    return bytes(out)


def decode_value(data: bytes) -> Any:
    """Decode one value that :func:`encode_value` wrote.

    Raises :class:`EncodingError` when the bytes are truncated, carry an
    unknown tag, or have bytes left over.
    """
    view = memoryview(data)
    try:
        value, offset = _read(view, 0)
    except IndexError:
        raise EncodingError("encoded value is truncated") from None
    if offset != len(view):
        raise EncodingError(f"{len(view) - offset} bytes left after the encoded value")
    return value


def _write_varint(out: bytearray, number: int) -> None:
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)


def _write_sized(
    out: bytearray, tag: int, body: bytes | bytearray | memoryview
) -> None:
    out.append(tag)
    _write_varint(out, len(body))
    out += body


def _write(out: bytearray, value: Any) -> None:
    if value is None:
        out.append(_NONE)
    elif value is True:
        out.append(_TRUE)
    elif value is False:
        out.append(_FALSE)
    elif isinstance(value, int):
        out.append(_INT)
        _write_varint(out, value << 1 if value >= 0 else ((-value) << 1) - 1)
    elif isinstance(value, float):
        out.append(_FLOAT)
        out += _DOUBLE.pack(value)
    elif isinstance(value, str):
        _write_sized(out, _STR, value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, (bytes, bytearray)):
        _write_sized(out, _BYTES, value)
    elif isinstance(value, memoryview):
        _write_sized(out, _BYTES, value.cast("B"))
    elif isinstance(value, (list, tuple)):
        out.append(_LIST if isinstance(value, list) else _TUPLE)
        _write_varint(out, len(value))
        for item in value:
            _write(out, item)
    elif isinstance(value, dict):
        out.append(_DICT)
        _write_varint(out, len(value))
        for key, item in value.items():
            _write(out, key)
            _write(out, item)
    else:
        raise EncodingError(f"cannot store a value of type {type(value).__name__}")


def _read_varint(view: memoryview, offset: int) -> tuple[int, int]:
    number = 0
    shift = 0
    while True:
        byte = view[offset]
        offset += 1
        number |= (byte & 0x7F) << shift
        if byte < 0x80:
            return number, offset
        shift += 7


def _read(view: memoryview, offset: int) -> tuple[Any, int]:
    tag = view[offset]
    offset += 1
    if tag == _NONE:
        return None, offset
    if tag == _TRUE:
        return True, offset
    if tag == _FALSE:
        return False, offset
    if tag == _INT:
        zigzag, offset = _read_varint(view, offset)
        return (zigzag >> 1) if not zigzag & 1 else -((zigzag + 1) >> 1), offset
    if tag == _FLOAT:
        end = offset + _DOUBLE.size
        if end > len(view):
            raise IndexError(end)
        return _DOUBLE.unpack(view[offset:end])[0], end
    if tag in (_STR, _BYTES):
        length, offset = _read_varint(view, offset)
        end = offset + length
        if end > len(view):
            raise IndexError(end)
        body = view[offset:end].tobytes()
        if tag == _BYTES:
            return body, end
        try:
            return body.decode("utf-8", "surrogatepass"), end
        except UnicodeDecodeError as error:
            raise EncodingError(
                f"invalid UTF-8 in an encoded string: {error}"
            ) from None
    if tag in (_LIST, _TUPLE):
        count, offset = _read_varint(view, offset)
        items = []
        for _ in range(count):
            item, offset = _read(view, offset)
            items.append(item)
        return (items if tag == _LIST else tuple(items)), offset
    if tag == _DICT:
        count, offset = _read_varint(view, offset)
        mapping = {}
        for _ in range(count):
            key, offset = _read(view, offset)
            item, offset = _read(view, offset)
            try:
                mapping[key] = item
            except TypeError:
                raise EncodingError("an encoded dict has an unhashable key") from None
        return mapping, offset
    raise EncodingError(f"unknown tag 0x{tag:02x} at offset {offset - 1}")
