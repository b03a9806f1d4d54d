"""Malformed and forbidden input, each mapped to the reason code to answer."""

import pytest

from mqttauth.mqtt.codec import Decoder
from mqttauth.mqtt.errors import (
    MalformedPacketError,
    MQTTError,
    ProtocolError,
    TopicNameInvalidError,
    UnsupportedProtocolVersionError,
)

from .wire import connect, pkt, props, raw_string, s

M = (MalformedPacketError, 0x81)
P = (ProtocolError, 0x82)
TOPIC_NAME = (TopicNameInvalidError, 0x90)
ALIAS = (ProtocolError, 0x94)
VERSION = (UnsupportedProtocolVersionError, 0x84)

USER_PROPERTY = "26" + s("k") + s("v")

# (case id, decoder level, bytes, (error class, reason code))
CASES = [
    # Fixed header
    ("type 0", 5, pkt(0x00), M),
    ("auth type on 3.1.1", 4, pkt(0xF0), M),
    ("connect flags", None, pkt(0x11, s("MQTT"), "0402003c", s("c")), M),
    ("connack flags", 5, pkt(0x21, "000000"), M),
    ("puback flags", 5, pkt(0x41, "0001"), M),
    ("pubrec flags", 5, pkt(0x58, "0001"), M),
    ("pubrel flags 0", 5, pkt(0x60, "0001"), M),
    ("pubrel flags 3", 4, pkt(0x63, "0001"), M),
    ("pubcomp flags", 5, pkt(0x72, "0001"), M),
    ("subscribe flags 0", 5, pkt(0x80, "0001", "00", s("a"), "00"), M),
    ("suback flags", 5, pkt(0x91, "000100", "00"), M),
    ("unsubscribe flags 0", 4, pkt(0xA0, "0001", s("a")), M),
    ("unsuback flags", 4, pkt(0xB8, "0001"), M),
    ("pingreq flags", 5, pkt(0xC1), M),
    ("pingresp flags", 5, pkt(0xD4), M),
    ("disconnect flags", 5, pkt(0xE1), M),
    ("auth flags", 5, pkt(0xF1), M),
    ("length of five bytes", 5, bytes.fromhex("30ffffffff01"), M),
    ("length not minimal 5.0", 5, bytes.fromhex("c08000"), M),
    ("first packet not connect", None, pkt(0xC0), P),
    ("publish before connect", None, pkt(0x30, s("t"), "6869"), P),
    # CONNECT
    (
        "protocol name",
        None,
        pkt(0x10, s("MQTX"), "0402003c", s("c")),
        VERSION,
    ),
    ("protocol level 6", None, connect(6, 0x02, s("c")), VERSION),
    ("protocol level 3", None, connect(3, 0x02, s("c")), VERSION),
    (
        "mqtt 3.1 name",
        None,
        pkt(0x10, s("MQIsdp"), "0302003c", s("c")),
        VERSION,
    ),
    ("connect cut before level", None, pkt(0x10, s("MQTT")), M),
    ("connect cut in header", None, pkt(0x10, s("MQTT"), "0402"), M),
    ("connect reserved flag", None, connect(4, 0x03, s("c")), M),
    ("will qos 3", None, connect(4, 0x1E, s("c"), s("w"), s("m")), M),
    ("will qos without will", None, connect(4, 0x0A, s("c")), M),
    ("will retain without will", None, connect(5, 0x22, s("c")), M),
    ("password without user 3.1.1", None, connect(4, 0x42, s("c"), s("p")), M),
    ("user name missing", None, connect(4, 0x82, s("c")), M),
    ("password missing", None, connect(5, 0x42, s("c")), M),
    ("will topic missing", None, connect(4, 0x06, s("c")), M),
    (
        "will topic wildcard",
        None,
        connect(4, 0x06, s("c"), s("a/#"), s("m")),
        TOPIC_NAME,
    ),
    ("will topic empty", None, connect(4, 0x06, s("c"), s(""), s("m")), TOPIC_NAME),
    ("trailing bytes", None, connect(4, 0x02, s("c"), "00"), M),
    ("client id missing", None, connect(4, 0x02), M),
    ("client id invalid utf-8", None, connect(4, 0x02, raw_string(b"\xff")), M),
    ("client id U+0000", None, connect(4, 0x02, raw_string(b"a\x00")), M),
    ("client id surrogate", None, connect(5, 0x02, raw_string(b"\xed\xa0\x80")), M),
    ("client id overlong", None, connect(5, 0x02, raw_string(b"\xc0\xaf")), M),
    ("client id cut off", None, connect(4, 0x02, "0005616263"), M),
    (
        "connect topic alias",
        None,
        connect(5, 0x02, s("c"), properties=props("230001")),
        M,
    ),
    (
        "connect session expiry twice",
        None,
        connect(5, 0x02, s("c"), properties=props("1100000001", "1100000002")),
        P,
    ),
    (
        "receive maximum 0",
        None,
        connect(5, 0x02, s("c"), properties=props("210000")),
        P,
    ),
    (
        "maximum packet size 0",
        None,
        connect(5, 0x02, s("c"), properties=props("2700000000")),
        P,
    ),
    (
        "request problem information 2",
        None,
        connect(5, 0x02, s("c"), properties=props("1702")),
        P,
    ),
    (
        "request response information 2",
        None,
        connect(5, 0x02, s("c"), properties=props("1902")),
        P,
    ),
    (
        "authentication data without method",
        None,
        connect(5, 0x02, s("c"), properties=props("16" + s("x"))),
        P,
    ),
    (
        "authentication method twice",
        None,
        connect(5, 0x02, s("c"), properties=props("15" + s("a"), "15" + s("a"))),
        P,
    ),
    ("unknown property", None, connect(5, 0x02, s("c"), properties=props("7f00")), M),
    (
        "property id of two bytes",
        None,
        connect(5, 0x02, s("c"), properties=props("8100")),
        M,
    ),
    ("property length past end", None, connect(5, 0x02, properties="05"), M),
    ("property value cut off", None, connect(5, 0x02, s("c"), properties="021100"), M),
    (
        "user property value missing",
        None,
        connect(5, 0x02, s("c"), properties=props("26" + s("k"))),
        M,
    ),
    (
        "will session expiry",
        None,
        connect(5, 0x06, s("c"), props("1100000001"), s("w"), s("m")),
        M,
    ),
    (
        "will delay in connect",
        None,
        connect(5, 0x02, s("c"), properties=props("1800000001")),
        M,
    ),
    (
        "will response topic wildcard",
        None,
        connect(5, 0x06, s("c"), props("08" + s("r/+")), s("w"), s("m")),
        P,
    ),
    (
        "will payload format 2",
        None,
        connect(5, 0x06, s("c"), props("0102"), s("w"), s("m")),
        P,
    ),
    # CONNACK
    ("connack reserved flags", 5, pkt(0x20, "020000"), M),
    ("connack session present refused", 5, pkt(0x20, "018700"), P),
    ("connack session present refused 3.1.1", 4, pkt(0x20, "0105"), P),
    ("connack return code 6", 4, pkt(0x20, "0006"), M),
    ("connack too long 3.1.1", 4, pkt(0x20, "000000"), M),
    ("connack short", 5, pkt(0x20, "00"), M),
    ("connack properties missing", 5, pkt(0x20, "0000"), M),
    ("connack reason 0x01", 5, pkt(0x20, "000100"), M),
    ("connack reason 0x8e", 5, pkt(0x20, "008e00"), M),
    ("connack maximum qos 2", 5, pkt(0x20, "0000", props("2402")), P),
    ("connack retain available 2", 5, pkt(0x20, "0000", props("2502")), P),
    ("connack will delay", 5, pkt(0x20, "0000", props("1800000001")), M),
    # PUBLISH
    ("publish qos 3", 5, pkt(0x36, s("t"), "0001", "00"), M),
    ("publish dup on qos 0", 4, pkt(0x38, s("t")), M),
    ("publish packet id 0", 5, pkt(0x32, s("t"), "0000", "00"), P),
    ("publish packet id 0 3.1.1", 4, pkt(0x34, s("t"), "0000"), P),
    ("publish packet id cut off", 4, pkt(0x32, s("t"), "00"), M),
    ("publish topic +", 5, pkt(0x30, s("a/+"), "00"), TOPIC_NAME),
    ("publish topic #", 4, pkt(0x30, s("#")), TOPIC_NAME),
    ("publish topic empty 3.1.1", 4, pkt(0x30, s(""), "6869"), TOPIC_NAME),
    ("publish topic empty without alias", 5, pkt(0x30, s(""), "00"), P),
    ("publish topic U+0000", 4, pkt(0x30, raw_string(b"a\x00")), M),
    ("publish topic invalid utf-8", 5, pkt(0x30, raw_string(b"\x80"), "00"), M),
    ("publish topic past end", 4, pkt(0x30, "0009", "6162"), M),
    ("publish empty body", 4, pkt(0x30), M),
    ("publish properties missing", 5, pkt(0x30, s("t")), M),
    ("publish topic alias 0", 5, pkt(0x30, s("t"), props("230000")), ALIAS),
    ("publish topic alias twice", 5, pkt(0x30, s("t"), props("230001", "230002")), P),
    ("publish subscription id 0", 5, pkt(0x30, s("t"), props("0b00")), P),
    ("publish subscription id long", 5, pkt(0x30, s("t"), props("0b8080808001")), M),
    ("publish subscription id not minimal", 5, pkt(0x30, s("t"), props("0b8100")), M),
    ("publish payload format 2", 5, pkt(0x30, s("t"), props("0102")), P),
    ("publish response topic #", 5, pkt(0x30, s("t"), props("08" + s("#"))), P),
    ("publish response topic empty", 5, pkt(0x30, s("t"), props("08" + s(""))), P),
    ("publish session expiry", 5, pkt(0x30, s("t"), props("1100000001")), M),
    ("publish reason string", 5, pkt(0x30, s("t"), props("1f" + s("x"))), M),
    (
        "publish content type twice",
        5,
        pkt(0x30, s("t"), props("03" + s("a"), "03" + s("b"))),
        P,
    ),
    ("publish property past end", 5, pkt(0x30, s("t"), "05", "0101"), M),
    ("publish property length not minimal", 5, pkt(0x30, s("t"), "8000"), M),
    # PUBACK, PUBREC, PUBREL, PUBCOMP
    ("puback short", 5, pkt(0x40, "00"), M),
    ("puback empty", 4, pkt(0x40), M),
    ("puback packet id 0", 5, pkt(0x40, "0000"), P),
    ("pubrec packet id 0", 4, pkt(0x50, "0000"), P),
    ("pubrel packet id 0", 5, pkt(0x62, "0000"), P),
    ("pubcomp packet id 0", 4, pkt(0x70, "0000"), P),
    ("puback long 3.1.1", 4, pkt(0x40, "000100"), M),
    ("pubcomp long 3.1.1", 4, pkt(0x70, "00010000"), M),
    ("puback reason 0x01", 5, pkt(0x40, "000101"), M),
    ("pubrec reason 0x92", 5, pkt(0x50, "000192"), M),
    ("pubrel reason 0x10", 5, pkt(0x62, "000110"), M),
    ("pubcomp reason 0x87", 5, pkt(0x70, "000187"), M),
    ("puback trailing", 5, pkt(0x40, "000100", "00", "00"), M),
    ("puback topic alias", 5, pkt(0x40, "000100", props("230001")), M),
    (
        "puback reason string twice",
        5,
        pkt(0x40, "000100", props("1f" + s("a"), "1f" + s("b"))),
        P,
    ),
    ("pubrel property length past end", 5, pkt(0x62, "000100", "09"), M),
    # SUBSCRIBE
    ("subscribe no filters 5.0", 5, pkt(0x82, "0001", "00"), P),
    ("subscribe no filters 3.1.1", 4, pkt(0x82, "0001"), P),
    ("subscribe packet id 0", 5, pkt(0x82, "0000", "00", s("a"), "00"), P),
    ("subscribe empty", 4, pkt(0x82), M),
    ("subscribe reserved option bits 5.0", 5, pkt(0x82, "0001", "00", s("a"), "40"), M),
    ("subscribe reserved option bits 3.1.1", 4, pkt(0x82, "0001", s("a"), "04"), M),
    ("subscribe qos 3", 5, pkt(0x82, "0001", "00", s("a"), "03"), M),
    ("subscribe qos 3 3.1.1", 4, pkt(0x82, "0001", s("a"), "03"), M),
    ("subscribe retain handling 3", 5, pkt(0x82, "0001", "00", s("a"), "30"), P),
    ("subscribe no local shared", 5, pkt(0x82, "0001", "00", s("$share/g/a"), "04"), P),
    ("subscribe options missing", 5, pkt(0x82, "0001", "00", s("a")), M),
    (
        "subscribe filter invalid utf-8",
        4,
        pkt(0x82, "0001", raw_string(b"\xfe"), "00"),
        M,
    ),
    (
        "subscribe filter U+0000",
        5,
        pkt(0x82, "0001", "00", raw_string(b"\x00"), "00"),
        M,
    ),
    ("subscribe id 0", 5, pkt(0x82, "0001", props("0b00"), s("a"), "00"), P),
    (
        "subscribe id twice",
        5,
        pkt(0x82, "0001", props("0b01", "0b02"), s("a"), "00"),
        P,
    ),
    ("subscribe topic alias", 5, pkt(0x82, "0001", props("230001"), s("a"), "00"), M),
    # SUBACK
    ("suback no codes", 5, pkt(0x90, "0001", "00"), M),
    ("suback no codes 3.1.1", 4, pkt(0x90, "0001"), M),
    ("suback code 3 3.1.1", 4, pkt(0x90, "0001", "03"), M),
    ("suback code 0x87 3.1.1", 4, pkt(0x90, "0001", "87"), M),
    ("suback code 0x11", 5, pkt(0x90, "0001", "00", "11"), M),
    ("suback packet id 0", 5, pkt(0x90, "0000", "00", "00"), P),
    # UNSUBSCRIBE and UNSUBACK
    ("unsubscribe no filters", 5, pkt(0xA2, "0001", "00"), P),
    ("unsubscribe no filters 3.1.1", 4, pkt(0xA2, "0001"), P),
    ("unsubscribe packet id 0", 4, pkt(0xA2, "0000", s("a")), P),
    ("unsubscribe filter cut off", 4, pkt(0xA2, "0001", "0003", "61"), M),
    ("unsubscribe subscription id", 5, pkt(0xA2, "0001", props("0b01"), s("a")), M),
    ("unsuback payload 3.1.1", 4, pkt(0xB0, "0001", "00"), M),
    ("unsuback no codes", 5, pkt(0xB0, "0001", "00"), M),
    ("unsuback code 0x10", 5, pkt(0xB0, "0001", "00", "10"), M),
    ("unsuback packet id 0", 5, pkt(0xB0, "0000", "00", "00"), P),
    # PINGREQ, PINGRESP
    ("pingreq with body", 5, pkt(0xC0, "00"), M),
    ("pingresp with body", 4, pkt(0xD0, "00"), M),
    # DISCONNECT
    ("disconnect with body 3.1.1", 4, pkt(0xE0, "00"), M),
    ("disconnect reason 0x01", 5, pkt(0xE0, "01"), M),
    ("disconnect reason 0x84", 5, pkt(0xE0, "84", "00"), M),
    ("disconnect topic alias", 5, pkt(0xE0, "00", props("230001")), M),
    (
        "disconnect session expiry twice",
        5,
        pkt(0xE0, "00", props("1100000000", "1100000000")),
        P,
    ),
    ("disconnect trailing", 5, pkt(0xE0, "00", "00", "00"), M),
    # AUTH
    ("auth reason 0x01", 5, pkt(0xF0, "01", props("15" + s("JWT"))), M),
    ("auth without method", 5, pkt(0xF0, "19", "00"), P),
    ("auth data without method", 5, pkt(0xF0, "18", props("16" + s("x"))), P),
    ("auth reason only", 5, pkt(0xF0, "18"), M),
    (
        "auth session expiry",
        5,
        pkt(0xF0, "19", props("15" + s("JWT"), "1100000000")),
        M,
    ),
    ("auth method twice", 5, pkt(0xF0, "19", props("15" + s("A"), "15" + s("A"))), P),
]


def decode_first_error(level: int | None, data: bytes) -> MQTTError:
    decoder = Decoder(protocol_level=level)
    decoder.feed(data)
    with pytest.raises(MQTTError) as caught:
        while decoder.next_packet() is not None:
            pass
    return caught.value


@pytest.mark.parametrize(
    ("level", "data", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_malformed_input(
    level: int | None, data: bytes, expected: tuple[type[MQTTError], int]
) -> None:
    error = decode_first_error(level, data)
    error_class, reason_code = expected
    assert type(error) is error_class
    assert error.reason_code == reason_code


def test_case_ids_unique() -> None:
    names = [case[0] for case in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("data", "level"),
    [
        (pkt(0x10, s("MQTX"), "0402003c", s("c")), 4),
        (pkt(0x10, s("MQIsdp"), "0302003c", s("c")), 3),
        (connect(6, 0x02, s("c")), 6),
        (connect(0, 0x02, s("c")), 0),
    ],
)
def test_unsupported_version_level(data: bytes, level: int) -> None:
    error = decode_first_error(None, data)
    assert isinstance(error, UnsupportedProtocolVersionError)
    assert error.protocol_level == level


def test_error_repeats_after_failure() -> None:
    decoder = Decoder(protocol_level=5)
    decoder.feed(pkt(0x36, s("t"), "0001", "00"))
    with pytest.raises(MalformedPacketError) as first:
        decoder.next_packet()
    decoder.feed(pkt(0xC0))
    with pytest.raises(MalformedPacketError) as second:
        decoder.next_packet()
    assert second.value is first.value


def test_error_message_names_packet() -> None:
    error = decode_first_error(5, pkt(0x62, "000110"))
    assert "PUBREL" in str(error)
