"""PUBLISH, SUBSCRIBE and their edge cases, with raw packets over loopback."""

from __future__ import annotations

import pytest_twisted

from mqttauth.broker.settings import BrokerSettings
from mqttauth.mqtt.constants import PropertyId, ReasonCode
from mqttauth.mqtt.packets import (
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
)
from tests.support.inprocess import in_thread
from tests.support.rawclient import RawClient

ALIAS = PropertyId.TOPIC_ALIAS
SUBSCRIPTION_IDENTIFIER = PropertyId.SUBSCRIPTION_IDENTIFIER


def subscribed(
    port: int,
    client_id: str,
    *subscriptions: Subscription,
    level: int = 5,
    properties: dict | None = None,
    **connect: object,
) -> RawClient:
    client = RawClient(port, protocol_level=level)
    client.connect(client_id, **connect)
    client.send(Subscribe(1, list(subscriptions), properties or {}))
    suback = client.receive()
    assert isinstance(suback, Suback)
    return client


@pytest_twisted.inlineCallbacks
def test_alias_zero_disconnect_0x94(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            client.send(Publish("t", b"x", properties={ALIAS: 0}))
            assert client.expect_closed() == b"\xe0\x01\x94"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_alias_over_maximum_0x94(make_broker):
    running = make_broker(settings=BrokerSettings(topic_alias_maximum=2))

    def scenario() -> None:
        with RawClient(running.port) as client:
            client.connect("c")
            client.send(Publish("t", b"x", properties={ALIAS: 3}))
            assert client.expect_closed() == b"\xe0\x01\x94"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_alias_unknown_0x82(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            client.send(Publish("", b"x", properties={ALIAS: 1}))
            assert client.expect_closed() == b"\xe0\x01\x82"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_alias_resolves_topic(broker):
    def scenario() -> None:
        with (
            subscribed(broker.port, "sub", Subscription("long/topic")) as sub,
            RawClient(broker.port) as pub,
        ):
            pub.connect("pub")
            pub.send(Publish("long/topic", b"1", properties={ALIAS: 1}))
            pub.send(Publish("", b"2", properties={ALIAS: 1}))
            assert sub.receive() == Publish("long/topic", b"1")
            assert sub.receive() == Publish("long/topic", b"2")

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_outbound_alias_used(broker):
    def scenario() -> None:
        sub = subscribed(
            broker.port,
            "sub",
            Subscription("a/b"),
            properties=None,
        )
        sub.close()
        with RawClient(broker.port) as sub, RawClient(broker.port) as pub:
            sub.connect("aliased", properties={PropertyId.TOPIC_ALIAS_MAXIMUM: 4})
            sub.send(Subscribe(1, [Subscription("a/b")]))
            sub.receive()
            pub.connect("pub")
            pub.send(Publish("a/b", b"1"))
            pub.send(Publish("a/b", b"2"))
            assert sub.receive() == Publish("a/b", b"1", properties={ALIAS: 1})
            assert sub.receive() == Publish("", b"2", properties={ALIAS: 1})

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_receive_maximum_exceeded_0x93(make_broker):
    running = make_broker(settings=BrokerSettings(receive_maximum=2))

    def scenario() -> None:
        with RawClient(running.port) as client:
            client.connect("c")
            for packet_id in (1, 2, 3):
                client.send(Publish("t", b"x", qos=2, packet_id=packet_id))
            assert client.expect_closed().endswith(b"\xe0\x01\x93")

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_qos2_delivered_once(broker):
    def scenario() -> None:
        with (
            subscribed(broker.port, "sub", Subscription("t", qos=2)) as sub,
            RawClient(broker.port) as pub,
        ):
            pub.connect("pub")
            pub.send(Publish("t", b"once", qos=2, packet_id=7))
            assert pub.receive() == Pubrec(7)
            pub.send(Publish("t", b"once", qos=2, packet_id=7, dup=True))
            assert pub.receive() == Pubrec(7)
            pub.send(Pubrel(7))
            assert pub.receive() == Pubcomp(7)
            delivered = sub.receive()
            assert delivered.payload == b"once"
            sub.send(Pubrec(delivered.packet_id))
            assert sub.receive() == Pubrel(delivered.packet_id)
            sub.send(Pubcomp(delivered.packet_id))
            sub.expect_silence(0.3)

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_pubrel_unknown_0x92(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            client.send(Pubrel(9))
            assert client.receive_bytes(5) == b"\x70\x03\x00\x09\x92"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_puback_no_subscribers_0x10(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            client.send(Publish("nobody", b"x", qos=1, packet_id=3))
            assert client.receive_bytes(5) == b"\x40\x03\x00\x03\x10"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_puback_v311_bytes(broker):
    def scenario() -> None:
        with RawClient(broker.port, protocol_level=4) as client:
            client.connect("c")
            client.send(Publish("nobody", b"x", qos=1, packet_id=3))
            assert client.receive_bytes(4) == b"\x40\x02\x00\x03"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_invalid_filter_v5_0x8f(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            client.send(
                Subscribe(4, [Subscription("a/#/b"), Subscription("ok", qos=1)])
            )
            assert client.receive() == Suback(4, [ReasonCode.TOPIC_FILTER_INVALID, 1])

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_invalid_filter_v311_closes(broker):
    def scenario() -> None:
        with RawClient(broker.port, protocol_level=4) as client:
            client.connect("c")
            client.send(Subscribe(4, [Subscription("a/#/b")]))
            assert client.expect_closed() == b""

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_shared_no_local_0x82(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            client.send(Subscribe(1, [Subscription("$share/g/t", no_local=True)]))
            assert client.expect_closed() == b"\xe0\x01\x82"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_suback_v311_bytes(broker):
    def scenario() -> None:
        with RawClient(broker.port, protocol_level=4) as client:
            client.connect("c")
            client.send(
                Subscribe(2, [Subscription("a", qos=2), Subscription("b", qos=1)])
            )
            assert client.receive_bytes(6) == b"\x90\x04\x00\x02\x02\x01"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_overlap_v5_carries_identifiers(broker):
    def scenario() -> None:
        with RawClient(broker.port) as sub, RawClient(broker.port) as pub:
            sub.connect("sub")
            sub.send(
                Subscribe(1, [Subscription("a/+")], {SUBSCRIPTION_IDENTIFIER: [1]})
            )
            sub.receive()
            sub.send(
                Subscribe(
                    2, [Subscription("a/#", qos=1)], {SUBSCRIPTION_IDENTIFIER: [2]}
                )
            )
            sub.receive()
            pub.connect("pub")
            pub.send(Publish("a/b", b"x", qos=1, packet_id=1))
            delivered = sub.receive()
            assert delivered.qos == 1
            assert delivered.properties[SUBSCRIPTION_IDENTIFIER] == [1, 2]
            sub.send(Puback(delivered.packet_id))
            sub.expect_silence(0.3)

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_overlap_v311_one_copy_highest(broker):
    def scenario() -> None:
        with (
            subscribed(
                broker.port,
                "sub",
                Subscription("a/+"),
                Subscription("a/#", qos=1),
                level=4,
            ) as sub,
            RawClient(broker.port, protocol_level=4) as pub,
        ):
            pub.connect("pub")
            pub.send(Publish("a/b", b"x", qos=2, packet_id=1))
            delivered = sub.receive()
            assert delivered.qos == 1
            sub.send(Puback(delivered.packet_id))
            sub.expect_silence(0.3)

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_no_local_skips_own(broker):
    def scenario() -> None:
        with subscribed(broker.port, "me", Subscription("t", no_local=True)) as client:
            client.send(Publish("t", b"own"))
            client.expect_silence(0.3)

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_retain_handling(broker):
    def scenario() -> None:
        with RawClient(broker.port) as pub:
            pub.connect("pub")
            pub.send(Publish("r", b"kept", qos=1, retain=True, packet_id=1))
            pub.receive()
        with RawClient(broker.port) as sub:
            sub.connect("sub")
            sub.send(Subscribe(1, [Subscription("r", retain_handling=2)]))
            sub.receive()
            sub.expect_silence(0.3)
            sub.send(Subscribe(2, [Subscription("x/#", retain_handling=1)]))
            sub.receive()
            sub.send(Subscribe(3, [Subscription("r", retain_handling=1)]))
            sub.receive()
            sub.expect_silence(0.3)
            sub.send(Subscribe(4, [Subscription("r")]))
            sub.receive()
            assert sub.receive() == Publish("r", b"kept", retain=True)

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_retain_as_published(broker):
    def scenario() -> None:
        with (
            subscribed(
                broker.port, "keep", Subscription("r", retain_as_published=True)
            ) as kept,
            subscribed(broker.port, "plain", Subscription("r")) as plain,
            RawClient(broker.port) as pub,
        ):
            pub.connect("pub")
            pub.send(Publish("r", b"v", retain=True))
            assert kept.receive().retain is True
            assert plain.receive().retain is False

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_dollar_topics_not_matched(broker):
    def scenario() -> None:
        with (
            subscribed(
                broker.port, "sub", Subscription("#"), Subscription("+/x")
            ) as sub,
            RawClient(broker.port) as pub,
        ):
            pub.connect("pub")
            pub.send(Publish("$SYS/x", b"x"))
            sub.expect_silence(0.3)

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_too_large_not_sent(broker):
    def scenario() -> None:
        with RawClient(broker.port) as sub, RawClient(broker.port) as pub:
            sub.connect("sub", properties={PropertyId.MAXIMUM_PACKET_SIZE: 40})
            sub.send(Subscribe(1, [Subscription("t", qos=1)]))
            sub.receive()
            pub.connect("pub")
            pub.send(Publish("t", b"x" * 100, qos=1, packet_id=1))
            pub.send(Publish("t", b"small", qos=1, packet_id=2))
            assert sub.receive().payload == b"small"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_expiry_forwarded(broker):
    def scenario() -> None:
        with (
            subscribed(broker.port, "sub", Subscription("t")) as sub,
            RawClient(broker.port) as pub,
        ):
            pub.connect("pub")
            pub.send(
                Publish("t", b"x", properties={PropertyId.MESSAGE_EXPIRY_INTERVAL: 60})
            )
            remaining = sub.receive().properties[PropertyId.MESSAGE_EXPIRY_INTERVAL]
            assert 0 < remaining <= 60

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_unsubscribe_codes(broker):
    def scenario() -> None:
        with subscribed(broker.port, "sub", Subscription("a")) as sub:
            sub.send(Unsubscribe(5, ["a", "b"]))
            assert sub.receive() == Unsuback(5, [0, ReasonCode.NO_SUBSCRIPTION_EXISTED])

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_qos_above_maximum_0x9b(make_broker):
    running = make_broker(settings=BrokerSettings(maximum_qos=1))

    def scenario() -> None:
        with RawClient(running.port) as client:
            client.connect("c")
            client.send(Publish("t", b"x", qos=2, packet_id=1))
            assert client.expect_closed() == b"\xe0\x01\x9b"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_client_subscription_identifier_0x82(broker):
    def scenario() -> None:
        with (
            subscribed(broker.port, "sub", Subscription("t")) as sub,
            RawClient(broker.port) as pub,
        ):
            pub.connect("pub")
            pub.send(
                Publish(
                    "t",
                    b"bad",
                    qos=1,
                    packet_id=1,
                    properties={SUBSCRIPTION_IDENTIFIER: [7]},
                )
            )
            assert pub.expect_closed() == b"\xe0\x01\x82"
            with RawClient(broker.port) as other:
                other.connect("other")
                other.send(Publish("t", b"good"))
                assert sub.receive() == Publish("t", b"good")

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_resend_with_dup_after_reconnect(broker):
    def scenario() -> None:
        with RawClient(broker.port) as sub:
            sub.connect(
                "sub",
                clean_start=False,
                properties={PropertyId.SESSION_EXPIRY_INTERVAL: 60},
            )
            sub.send(Subscribe(1, [Subscription("t", qos=2)]))
            sub.receive()
            with RawClient(broker.port) as pub:
                pub.connect("pub")
                pub.send(Publish("t", b"one", qos=1, packet_id=1))
                pub.send(Publish("t", b"two", qos=2, packet_id=2))
                pub.receive()
                first = sub.receive()
                second = sub.receive()
            sub.send(Pubrec(second.packet_id))
            assert sub.receive() == Pubrel(second.packet_id)
        with RawClient(broker.port) as again:
            connack = again.connect(
                "sub",
                clean_start=False,
                properties={PropertyId.SESSION_EXPIRY_INTERVAL: 60},
            )
            assert connack.session_present
            resent = again.receive()
            assert resent.dup
            assert resent.packet_id == first.packet_id
            assert resent.payload == b"one"
            assert again.receive() == Pubrel(second.packet_id)

    yield in_thread(scenario)
