"""Typed MQTT control packets.

One class per control packet type, with the fields the specifications name.
MQTT 5.0 properties live in ``properties``: a dict from :class:`PropertyId` to
the value, where User Property is a list of ``(name, value)`` pairs and
Subscription Identifier a list of ints, the two properties that may repeat.
Fields that exist only in 5.0 (reason codes, properties) keep their defaults
when a packet is encoded or decoded as 3.1.1.
"""

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .constants import MQTT_5_0, PROTOCOL_NAME, PacketType

Properties = dict[int, Any]


@dataclass(slots=True)
class Will:
    """The Will Message of a CONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Connect:
    packet_type: ClassVar[PacketType] = PacketType.CONNECT

    client_id: str
    protocol_level: int = MQTT_5_0
    clean_start: bool = True
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=dict)
    protocol_name: str = PROTOCOL_NAME


@dataclass(slots=True)
class Connack:
    packet_type: ClassVar[PacketType] = PacketType.CONNACK

    #: The 5.0 reason code, or the 3.1.1 return code when encoded as 3.1.1.
    reason_code: int = 0
    session_present: bool = False
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Publish:
    packet_type: ClassVar[PacketType] = PacketType.PUBLISH

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    #: Present exactly when ``qos`` is 1 or 2.
    packet_id: int | None = None
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Puback:
    packet_type: ClassVar[PacketType] = PacketType.PUBACK

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Pubrec:
    packet_type: ClassVar[PacketType] = PacketType.PUBREC

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Pubrel:
    packet_type: ClassVar[PacketType] = PacketType.PUBREL

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Pubcomp:
    packet_type: ClassVar[PacketType] = PacketType.PUBCOMP

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Subscription:
    """One topic filter of a SUBSCRIBE with its Subscription Options."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(slots=True)
class Subscribe:
    packet_type: ClassVar[PacketType] = PacketType.SUBSCRIBE

    packet_id: int
    subscriptions: list[Subscription]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Suback:
    packet_type: ClassVar[PacketType] = PacketType.SUBACK

    packet_id: int
    #: One per requested filter: granted QoS or a failure code.
    reason_codes: list[int]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Unsubscribe:
    packet_type: ClassVar[PacketType] = PacketType.UNSUBSCRIBE

    packet_id: int
    topic_filters: list[str]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Unsuback:
    packet_type: ClassVar[PacketType] = PacketType.UNSUBACK

    packet_id: int
    #: One per filter on 5.0; always empty on 3.1.1, which has no payload here.
    reason_codes: list[int] = field(default_factory=list)
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Pingreq:
    packet_type: ClassVar[PacketType] = PacketType.PINGREQ


@dataclass(slots=True)
class Pingresp:
    packet_type: ClassVar[PacketType] = PacketType.PINGRESP


@dataclass(slots=True)
class Disconnect:
    packet_type: ClassVar[PacketType] = PacketType.DISCONNECT

    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Auth:
    """The MQTT 5.0 AUTH packet (there is none in 3.1.1)."""

    packet_type: ClassVar[PacketType] = PacketType.AUTH

    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


Packet = (
    Connect
    | Connack
    | Publish
    | Puback
    | Pubrec
    | Pubrel
    | Pubcomp
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
    | Auth
)
