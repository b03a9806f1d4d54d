"""The MQTT 5.0 reason codes that each packet type may carry.

A packet with a reason code outside its list (MQTT 5.0 sections 3.2.2.2,
3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1 and 3.15.2.1)
cannot be interpreted, so the decoder treats it as a Malformed Packet. The
MQTT 3.1.1 lists are here too: CONNACK return codes 0 to 5, and SUBACK
return codes 0, 1, 2 and 0x80.
"""

from .constants import PacketType

_T = PacketType

REASON_CODES_5: dict[int, frozenset[int]] = {
    _T.CONNACK: frozenset(
        {
            0x00,
            0x80,
            0x81,
            0x82,
            0x83,
            0x84,
            0x85,
            0x86,
            0x87,
            0x88,
            0x89,
            0x8A,
            0x8C,
            0x90,
            0x95,
            0x97,
            0x99,
            0x9A,
            0x9B,
            0x9C,
            0x9D,
            0x9F,
        }
    ),  # fmt: skip
    _T.PUBACK: frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}),
    _T.PUBREC: frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}),
    _T.PUBREL: frozenset({0x00, 0x92}),
    _T.PUBCOMP: frozenset({0x00, 0x92}),
    _T.SUBACK: frozenset(
        {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}
    ),
    _T.UNSUBACK: frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}),
    _T.DISCONNECT: frozenset(
        {
            0x00,
            0x04,
            0x80,
            0x81,
            0x82,
            0x83,
            0x87,
            0x89,
            0x8B,
            0x8D,
            0x8E,
            0x8F,
            0x90,
            0x93,
            0x94,
            0x95,
            0x96,
            0x97,
            0x98,
            0x99,
            0x9A,
            0x9B,
            0x9C,
            0x9D,
            0x9E,
            0x9F,
            0xA0,
            0xA1,
            0xA2,
        }
    ),  # fmt: skip
    _T.AUTH: frozenset({0x00, 0x18, 0x19}),
}

#: MQTT 3.1.1 CONNACK return codes (6 to 255 are reserved).
CONNACK_RETURN_CODES_4 = frozenset(range(6))

#: MQTT 3.1.1 SUBACK return codes: the granted QoS, or 0x80 Failure.
SUBACK_RETURN_CODES_4 = frozenset({0x00, 0x01, 0x02, 0x80})
