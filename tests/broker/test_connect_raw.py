"""CONNECT and connection rules, checked byte by byte over loopback."""

from __future__ import annotations

import pytest
import pytest_twisted

from mqttauth.broker.settings import BrokerSettings
from mqttauth.mqtt.codec import encode
from mqttauth.mqtt.constants import PropertyId
from mqttauth.mqtt.packets import Connack, Connect, Disconnect, Pingreq, Pingresp
from tests.support.inprocess import in_thread
from tests.support.rawclient import RawClient


def mqtt31_connect() -> bytes:
    body = b"\x00\x06MQIsdp" + b"\x03" + b"\x02" + b"\x00\x3c" + b"\x00\x01c"
    return bytes((0x10, len(body))) + body


def level_connect(level: int) -> bytes:
    body = b"\x00\x04MQTT" + bytes((level,)) + b"\x02" + b"\x00\x3c"
    if level == 5:
        body += b"\x00"
    body += b"\x00\x01c"
    return bytes((0x10, len(body))) + body


@pytest_twisted.inlineCallbacks
def test_mqtt31_refused_with_code_1(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.send_raw(mqtt31_connect())
            assert client.expect_closed() == b"\x20\x02\x00\x01"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_level_6_refused_with_0x84(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.send_raw(level_connect(6))
            assert client.expect_closed() == b"\x20\x03\x00\x84\x00"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_first_packet_not_connect(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.send_raw(b"\xc0\x00")
            assert client.expect_closed() == b""

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_second_connect_v5_disconnect_0x82(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            client.send_raw(level_connect(5))
            assert client.expect_closed() == b"\xe0\x01\x82"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_second_connect_v311_closes(broker):
    def scenario() -> None:
        with RawClient(broker.port, protocol_level=4) as client:
            client.connect("c")
            client.send_raw(level_connect(4))
            assert client.expect_closed() == b""

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_v311_connack_bytes(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.send_raw(level_connect(4))
            assert client.receive_bytes(4) == b"\x20\x02\x00\x00"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_v311_empty_id_persistent_refused(broker):
    def scenario() -> None:
        with RawClient(broker.port, protocol_level=4) as client:
            client.send(Connect("", protocol_level=4, clean_start=False))
            assert client.expect_closed() == b"\x20\x02\x00\x02"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_v311_empty_id_clean_accepted(broker):
    def scenario() -> None:
        with RawClient(broker.port, protocol_level=4) as client:
            assert client.connect("").reason_code == 0

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_v5_empty_id_assigned(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            connack = client.connect("")
            assigned = connack.properties[PropertyId.ASSIGNED_CLIENT_IDENTIFIER]
            assert connack.reason_code == 0
            assert assigned

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_connack_states_limits(make_broker):
    settings = BrokerSettings(
        receive_maximum=10,
        max_packet_size=4096,
        topic_alias_maximum=5,
        maximum_qos=1,
        retain_available=False,
    )
    running = make_broker(settings=settings)

    def scenario() -> None:
        with RawClient(running.port) as client:
            properties = client.connect("c").properties
            assert properties[PropertyId.RECEIVE_MAXIMUM] == 10
            assert properties[PropertyId.MAXIMUM_PACKET_SIZE] == 4096
            assert properties[PropertyId.TOPIC_ALIAS_MAXIMUM] == 5
            assert properties[PropertyId.MAXIMUM_QOS] == 1
            assert properties[PropertyId.RETAIN_AVAILABLE] == 0
            assert properties[PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE] == 1
            assert properties[PropertyId.SHARED_SUBSCRIPTION_AVAILABLE] == 1

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_connack_fits_small_maximum_packet_size(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            connack = client.connect(
                "c", properties={PropertyId.MAXIMUM_PACKET_SIZE: 20}
            )
            assert connack.reason_code == 0
            assert len(encode(connack, 5)) <= 20
            assert connack.properties[PropertyId.RECEIVE_MAXIMUM] == 1024
            assert connack.properties[PropertyId.TOPIC_ALIAS_MAXIMUM] == 64
            assert PropertyId.RETAIN_AVAILABLE not in connack.properties
            client.send(Pingreq())
            assert client.receive() == Pingresp()

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_connack_too_large_closes(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.send(Connect("c", properties={PropertyId.MAXIMUM_PACKET_SIZE: 4}))
            assert client.expect_closed() == b""
        assert "c" not in broker.broker.sessions

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_server_keep_alive(make_broker):
    running = make_broker(settings=BrokerSettings(max_keep_alive=30))

    def scenario() -> None:
        with RawClient(running.port) as client:
            connack = client.connect("c", keep_alive=0)
            assert connack.properties[PropertyId.SERVER_KEEP_ALIVE] == 30

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("keep_alive", [0, 31])
def test_max_keep_alive_rejects_v311(make_broker, keep_alive):
    running = make_broker(settings=BrokerSettings(max_keep_alive=30))

    def scenario() -> None:
        with RawClient(running.port, protocol_level=4) as client:
            client.send(Connect("c", protocol_level=4, keep_alive=keep_alive))
            assert client.receive() == Connack(0x02, False)
            assert client.expect_closed() == b""

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_max_keep_alive_accepts_v311_within(make_broker):
    running = make_broker(settings=BrokerSettings(max_keep_alive=30))

    def scenario() -> None:
        with RawClient(running.port, protocol_level=4) as client:
            connack = client.connect("c", keep_alive=30)
            assert connack.reason_code == 0

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_connect_timeout_closes(make_broker):
    running = make_broker(settings=BrokerSettings(connect_timeout=0.2))

    def scenario() -> None:
        with RawClient(running.port) as client:
            assert client.expect_closed(timeout=5) == b""

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_keep_alive_timeout_v5(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c", keep_alive=1)
            assert client.expect_closed(timeout=5) == b"\xe0\x01\x8d"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_pingreq_answered(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            client.send(Pingreq())
            assert client.receive_bytes(2) == b"\xd0\x00"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_takeover_sends_0x8e(broker):
    def scenario() -> None:
        with RawClient(broker.port) as first, RawClient(broker.port) as second:
            first.connect("same")
            assert second.connect("same").reason_code == 0
            assert first.expect_closed() == b"\xe0\x01\x8e"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_disconnect_expiry_from_zero(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            client.send(Disconnect(0, {PropertyId.SESSION_EXPIRY_INTERVAL: 60}))
            assert client.expect_closed() == b"\xe0\x01\x82"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_malformed_after_connect_v5(broker):
    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.connect("c")
            # PUBLISH with QoS 3 is malformed.
            client.send_raw(b"\x36\x05\x00\x01t\x00\x01")
            assert client.expect_closed() == b"\xe0\x01\x81"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_malformed_after_connect_v311(broker):
    def scenario() -> None:
        with RawClient(broker.port, protocol_level=4) as client:
            client.connect("c")
            client.send_raw(b"\x36\x05\x00\x01t\x00\x01")
            assert client.expect_closed() == b""

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_malformed_leaves_others(broker):
    def scenario() -> None:
        with RawClient(broker.port) as good, RawClient(broker.port) as bad:
            good.connect("good")
            bad.connect("bad")
            bad.send_raw(b"\x36\x05\x00\x01t\x00\x01")
            bad.expect_closed()
            good.send(Pingreq())
            assert good.receive_bytes(2) == b"\xd0\x00"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_stop_sends_0x8b(make_broker):
    running = make_broker()
    client = RawClient(running.port)
    yield in_thread(client.connect, "c")
    yield running.broker.stop()
    closed = yield in_thread(client.expect_closed)
    client.close()
    assert closed == b"\xe0\x01\x8b"


@pytest_twisted.inlineCallbacks
def test_bad_v5_connect_gets_connack(broker):
    # Receive Maximum (0x21) of 0 is a Protocol Error.
    body = b"\x00\x04MQTT\x05\x02\x00\x3c\x03\x21\x00\x00\x00\x01c"

    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.send_raw(bytes((0x10, len(body))) + body)
            assert client.expect_closed() == b"\x20\x03\x00\x82\x00"

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_bad_v311_connect_closes(broker):
    # The reserved bit of the Connect Flags is set.
    body = b"\x00\x04MQTT\x04\x03\x00\x3c\x00\x01c"

    def scenario() -> None:
        with RawClient(broker.port) as client:
            client.send_raw(bytes((0x10, len(body))) + body)
            assert client.expect_closed() == b""

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_connection_limit_0x97(make_broker):
    running = make_broker(settings=BrokerSettings(max_connections=1))

    def scenario() -> None:
        with RawClient(running.port) as first, RawClient(running.port) as second:
            assert first.connect("a").reason_code == 0
            assert second.connect("b").reason_code == 0x97
            second.expect_closed()

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_connection_limit_v311_code_3(make_broker):
    running = make_broker(settings=BrokerSettings(max_connections=1))

    def scenario() -> None:
        with RawClient(running.port) as first:
            first.connect("a")
            with RawClient(running.port, protocol_level=4) as second:
                second.send(Connect("b", protocol_level=4))
                assert second.expect_closed() == b"\x20\x02\x00\x03"

    yield in_thread(scenario)
