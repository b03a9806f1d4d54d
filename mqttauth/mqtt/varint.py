"""Variable Byte Integer: the MQTT length and identifier encoding.

Seven bits per byte, least significant group first, the high bit set on every
byte but the last, at most four bytes (MQTT 3.1.1 section 2.2.3, MQTT 5.0
section 1.5.5). So the largest value is 268,435,455.
"""

from .errors import MalformedPacketError

#: The largest value a Variable Byte Integer can hold.
MAX_VARIABLE_BYTE_INTEGER = 268_435_455

#: The encoding of every one-byte value, so the common case is a lookup.
_ONE_BYTE = tuple(bytes((value,)) for value in range(128))


def encode_variable_byte_integer(value: int) -> bytes:
    """Encode ``value`` in the minimum number of bytes.

    Raises ValueError for a value below 0 or above 268,435,455.
    """
    if 0 <= value < 128:
        return _ONE_BYTE[value]
    if value < 0 or value > MAX_VARIABLE_BYTE_INTEGER:
        raise ValueError(f"Variable Byte Integer out of range 0..268435455: {value!r}")
    encoded = bytearray()
    while True:
        digit = value & 0x7F
        value >>= 7
        if value:
            encoded.append(digit | 0x80)
        else:
            encoded.append(digit)
            return bytes(encoded)


def variable_byte_integer_size(value: int) -> int:
    """Return how many bytes the minimal encoding of ``value`` takes."""
    if value < 128:
        return 1
    if value < 16_384:
        return 2
    if value < 2_097_152:
        return 3
    return 4


def decode_variable_byte_integer(
    data: bytes, offset: int, end: int, *, minimal: bool = True
) -> tuple[int, int]:
    """Decode the integer at ``data[offset:end]``; return it and the offset after.

    Raises MalformedPacketError when the bytes end first, when a fifth byte
    would follow, or, with ``minimal``, when the value is not in its shortest
    form (MQTT 5.0 requires the minimum number of bytes [MQTT-1.5.5-1]).
    """
    value = 0
    shift = 0
    for index in range(offset, min(offset + 4, end)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if minimal and byte == 0 and index > offset:
                raise MalformedPacketError(
                    "Variable Byte Integer not in its minimal encoding"
                )
            return value, index + 1
        shift += 7
    if end - offset >= 4:
        raise MalformedPacketError("Variable Byte Integer longer than four bytes")
    raise MalformedPacketError("Variable Byte Integer cut off by the end of data")
