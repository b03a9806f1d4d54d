"""Builders for raw packet bytes, written independently of the codec."""


def vbi(value: int) -> bytes:
    """Encode a Variable Byte Integer by the specification's algorithm."""
    out = bytearray()
    while True:
        digit, value = value % 128, value // 128
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def s(text: str) -> str:
    """Return the hex of an MQTT UTF-8 string."""
    raw = text.encode("utf-8")
    return (len(raw).to_bytes(2, "big") + raw).hex()


def raw_string(raw: bytes) -> str:
    """Return the hex of a length-prefixed field holding ``raw`` as is."""
    return (len(raw).to_bytes(2, "big") + raw).hex()


def props(*parts: str) -> str:
    """Return the hex of a property block: its length, then ``parts``."""
    body = bytes.fromhex("".join(parts))
    return (vbi(len(body)) + body).hex()


def pkt(first: int, *parts: str) -> bytes:
    """Build a packet from its first byte and hex parts; compute the length."""
    body = bytes.fromhex("".join(parts))
    return bytes((first,)) + vbi(len(body)) + body


def connect(level: int, flags: int, *payload: str, properties: str = "00") -> bytes:
    """Build a CONNECT with keep alive 60; ``properties`` is used on level 5."""
    header = s("MQTT") + f"{level:02x}{flags:02x}003c"
    if level == 5:
        header += properties
    return pkt(0x10, header, *payload)
