"""Hypothesis strategies for valid packets of every type and both levels."""

from typing import Any

from hypothesis import strategies as st

from mqttauth.mqtt.constants import PacketType as T
from mqttauth.mqtt.constants import PropertyId as P
from mqttauth.mqtt.packets import (
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
from mqttauth.mqtt.properties import PROPERTIES, WILL_PROPERTIES, PropertyType
from mqttauth.mqtt.reason_codes import (
    CONNACK_RETURN_CODES_4,
    REASON_CODES_5,
    SUBACK_RETURN_CODES_4,
)

# Any Unicode scalar value but U+0000: surrogates are not encodable.
mqtt_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
topic_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#"),
    min_size=1,
    max_size=12,
)
small_binary = st.binary(max_size=24)
packet_ids = st.integers(1, 65_535)


def _value(identifier: int, context: int) -> st.SearchStrategy[Any]:
    spec = PROPERTIES[identifier]
    data_type = spec.data_type
    if identifier == P.RESPONSE_TOPIC:
        return topic_names
    if identifier == P.SUBSCRIPTION_IDENTIFIER:
        size = 3 if context == T.PUBLISH else 1
        return st.lists(st.integers(1, 268_435_455), min_size=1, max_size=size)
    if identifier == P.USER_PROPERTY:
        return st.lists(st.tuples(mqtt_text, mqtt_text), min_size=1, max_size=3)
    if data_type is PropertyType.BYTE:
        return st.integers(spec.minimum, spec.maximum or 255)
    if data_type is PropertyType.TWO_BYTE_INTEGER:
        return st.integers(spec.minimum, 65_535)
    if data_type is PropertyType.FOUR_BYTE_INTEGER:
        return st.integers(spec.minimum, 2**32 - 1)
    if data_type is PropertyType.UTF8_STRING:
        return mqtt_text
    return small_binary


def properties_for(context: int) -> st.SearchStrategy[dict[int, Any]]:
    """Draw valid properties for a packet type or the Will Properties."""
    allowed = sorted(
        identifier
        for identifier, spec in PROPERTIES.items()
        if context in spec.allowed_in
    )
    if not allowed:
        return st.just({})
    return st.lists(st.sampled_from(allowed), unique=True, max_size=5).flatmap(
        lambda identifiers: st.fixed_dictionaries(
            {identifier: _value(identifier, context) for identifier in identifiers}
        )
    )


def _without_orphan_data(properties: dict[int, Any]) -> dict[int, Any]:
    if (
        P.AUTHENTICATION_DATA in properties
        and P.AUTHENTICATION_METHOD not in properties
    ):
        properties[P.AUTHENTICATION_METHOD] = "m"
    return properties


def _props(level: int, context: int) -> st.SearchStrategy[dict[int, Any]]:
    if level != 5:
        return st.just({})
    return properties_for(context).map(_without_orphan_data)


@st.composite
def connects(draw: st.DrawFn, level: int) -> Connect:
    will = None
    if draw(st.booleans()):
        will = Will(
            draw(topic_names),
            draw(small_binary),
            draw(st.integers(0, 2)),
            draw(st.booleans()),
            draw(_props(level, WILL_PROPERTIES)),
        )
    username = draw(st.none() | mqtt_text)
    password = draw(st.none() | small_binary)
    if level == 4 and username is None:
        password = None
    return Connect(
        draw(mqtt_text),
        level,
        draw(st.booleans()),
        draw(st.integers(0, 65_535)),
        username,
        password,
        will,
        draw(_props(level, T.CONNECT)),
    )


@st.composite
def connacks(draw: st.DrawFn, level: int) -> Connack:
    codes = CONNACK_RETURN_CODES_4 if level == 4 else REASON_CODES_5[T.CONNACK]
    reason_code = draw(st.sampled_from(sorted(codes)))
    session_present = reason_code == 0 and draw(st.booleans())
    return Connack(reason_code, session_present, draw(_props(level, T.CONNACK)))


@st.composite
def publishes(draw: st.DrawFn, level: int) -> Publish:
    qos = draw(st.integers(0, 2))
    properties = draw(_props(level, T.PUBLISH))
    topic = draw(topic_names)
    if P.TOPIC_ALIAS in properties and draw(st.booleans()):
        topic = ""
    return Publish(
        topic,
        draw(st.binary(max_size=200)),
        qos,
        draw(st.booleans()),
        qos > 0 and draw(st.booleans()),
        draw(packet_ids) if qos else None,
        properties,
    )


def acks(
    draw: st.DrawFn, packet_class: type[Puback | Pubrec | Pubrel | Pubcomp], level: int
) -> Puback | Pubrec | Pubrel | Pubcomp:
    packet_type = packet_class.packet_type
    if level == 4:
        return packet_class(draw(packet_ids))
    return packet_class(
        draw(packet_ids),
        draw(st.sampled_from(sorted(REASON_CODES_5[packet_type]))),
        draw(_props(level, packet_type)),
    )


@st.composite
def subscriptions(draw: st.DrawFn, level: int) -> Subscription:
    topic_filter = draw(mqtt_text)
    if level == 4:
        return Subscription(topic_filter, draw(st.integers(0, 2)))
    no_local = draw(st.booleans()) and not topic_filter.startswith("$share/")
    return Subscription(
        topic_filter,
        draw(st.integers(0, 2)),
        no_local,
        draw(st.booleans()),
        draw(st.integers(0, 2)),
    )


@st.composite
def packets(draw: st.DrawFn, level: int) -> Packet:
    """Draw a valid packet of any type that exists at ``level``."""
    names = [
        "connect",
        "connack",
        "publish",
        "puback",
        "pubrec",
        "pubrel",
        "pubcomp",
        "subscribe",
        "suback",
        "unsubscribe",
        "unsuback",
        "pingreq",
        "pingresp",
        "disconnect",
    ]
    if level == 5:
        names.append("auth")
    name = draw(st.sampled_from(names))
    if name == "connect":
        return draw(connects(level))
    if name == "connack":
        return draw(connacks(level))
    if name == "publish":
        return draw(publishes(level))
    if name in ("puback", "pubrec", "pubrel", "pubcomp"):
        ack_class = {
            "puback": Puback,
            "pubrec": Pubrec,
            "pubrel": Pubrel,
            "pubcomp": Pubcomp,
        }[name]
        return acks(draw, ack_class, level)
    if name == "subscribe":
        return Subscribe(
            draw(packet_ids),
            draw(st.lists(subscriptions(level), min_size=1, max_size=4)),
            draw(_props(level, T.SUBSCRIBE)),
        )
    if name == "suback":
        codes = SUBACK_RETURN_CODES_4 if level == 4 else REASON_CODES_5[T.SUBACK]
        return Suback(
            draw(packet_ids),
            draw(st.lists(st.sampled_from(sorted(codes)), min_size=1, max_size=4)),
            draw(_props(level, T.SUBACK)),
        )
    if name == "unsubscribe":
        return Unsubscribe(
            draw(packet_ids),
            draw(st.lists(mqtt_text, min_size=1, max_size=4)),
            draw(_props(level, T.UNSUBSCRIBE)),
        )
    if name == "unsuback":
        if level == 4:
            return Unsuback(draw(packet_ids))
        codes = REASON_CODES_5[T.UNSUBACK]
        return Unsuback(
            draw(packet_ids),
            draw(st.lists(st.sampled_from(sorted(codes)), min_size=1, max_size=4)),
            draw(_props(level, T.UNSUBACK)),
        )
    if name == "pingreq":
        return Pingreq()
    if name == "pingresp":
        return Pingresp()
    if name == "disconnect":
        if level == 4:
            return Disconnect()
        return Disconnect(
            draw(st.sampled_from(sorted(REASON_CODES_5[T.DISCONNECT]))),
            draw(_props(level, T.DISCONNECT)),
        )
    properties = draw(_props(level, T.AUTH))
    reason_code = draw(st.sampled_from(sorted(REASON_CODES_5[T.AUTH])))
    if reason_code or properties:
        properties.setdefault(P.AUTHENTICATION_METHOD, "JWT")
    return Auth(reason_code, properties)
