"""The codec's error hierarchy.

Every error carries the MQTT 5.0 reason code that the receiving side answers
with: a DISCONNECT (or a CONNACK while connecting) carrying that code on 5.0,
and a closed connection on 3.1.1, which has no way to say why.
"""

from .constants import ReasonCode


class MQTTError(Exception):
    """A packet or a packet sequence that breaks the MQTT specification."""

    reason_code: ReasonCode = ReasonCode.UNSPECIFIED_ERROR

    def __init__(self, message: str, reason_code: ReasonCode | None = None) -> None:
        super().__init__(message)
        if reason_code is not None:
            self.reason_code = reason_code


class MalformedPacketError(MQTTError):
    """Bytes that cannot be parsed as the packet they claim to be (0x81)."""

    reason_code = ReasonCode.MALFORMED_PACKET


class ProtocolError(MQTTError):
    """A well-formed packet that the specification forbids here (0x82)."""

    reason_code = ReasonCode.PROTOCOL_ERROR


class PacketTooLargeError(MQTTError):
    """A packet larger than the receiver's Maximum Packet Size (0x95)."""

    reason_code = ReasonCode.PACKET_TOO_LARGE


class UnsupportedProtocolVersionError(MQTTError):
    """A CONNECT with a protocol name or level this codec does not speak (0x84).

    ``protocol_level`` is the level the client sent, so the server can answer
    in the version the client speaks (3.1.1 return code 1 for level 3 and 4).
    """

    reason_code = ReasonCode.UNSUPPORTED_PROTOCOL_VERSION

    def __init__(self, message: str, protocol_level: int) -> None:
        super().__init__(message)
        self.protocol_level = protocol_level


class TopicNameInvalidError(MQTTError):
    """A PUBLISH topic name that is not a valid topic name (0x90)."""

    reason_code = ReasonCode.TOPIC_NAME_INVALID


class TopicFilterInvalidError(MQTTError):
    """A topic filter that breaks the wildcard rules (0x8F)."""

    reason_code = ReasonCode.TOPIC_FILTER_INVALID
