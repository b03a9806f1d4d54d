"""Sessions, wills and expiry on a Clock-driven broker."""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from mqttauth.broker.settings import BrokerSettings
from mqttauth.mqtt.constants import PropertyId, ReasonCode
from mqttauth.mqtt.packets import (
    Disconnect,
    Puback,
    Publish,
    Subscribe,
    Subscription,
    Will,
)
from tests.broker.clocked import FakeClient, clocked_broker

EXPIRY = PropertyId.SESSION_EXPIRY_INTERVAL
WILL_DELAY = PropertyId.WILL_DELAY_INTERVAL
MESSAGE_EXPIRY = PropertyId.MESSAGE_EXPIRY_INTERVAL
RECEIVE_MAXIMUM = PropertyId.RECEIVE_MAXIMUM
MAXIMUM_PACKET_SIZE = PropertyId.MAXIMUM_PACKET_SIZE


def watcher(broker, topic_filter="wills/#"):  # noqa: ANN001, ANN201
    client = FakeClient(broker)
    client.connect("watcher")
    client.send(Subscribe(1, [Subscription(topic_filter)]))
    client.received()
    return client


def will_client(broker, delay, session_expiry):  # noqa: ANN001, ANN201
    client = FakeClient(broker)
    client.connect(
        "device",
        clean_start=False,
        will=Will("wills/device", b"gone", properties={WILL_DELAY: delay}),
        properties={EXPIRY: session_expiry},
    )
    return client


def test_will_waits_for_delay():
    broker = clocked_broker()
    watch = watcher(broker)
    will_client(broker, delay=5, session_expiry=60).lose()
    broker.reactor.advance(4)
    assert watch.received() == []
    broker.reactor.advance(1)
    assert watch.received() == [Publish("wills/device", b"gone")]


def test_will_at_session_end_if_sooner():
    broker = clocked_broker()
    watch = watcher(broker)
    will_client(broker, delay=50, session_expiry=3).lose()
    broker.reactor.advance(3)
    assert watch.received() == [Publish("wills/device", b"gone")]


def test_reconnect_cancels_will():
    broker = clocked_broker()
    watch = watcher(broker)
    will_client(broker, delay=5, session_expiry=60).lose()
    broker.reactor.advance(2)
    again = FakeClient(broker)
    assert again.connect("device", clean_start=False).session_present
    broker.reactor.advance(10)
    assert watch.received() == []


def test_clean_start_sends_pending_will():
    broker = clocked_broker()
    watch = watcher(broker)
    will_client(broker, delay=5, session_expiry=60).lose()
    again = FakeClient(broker)
    assert not again.connect("device", clean_start=True).session_present
    assert watch.received() == [Publish("wills/device", b"gone")]


def test_disconnect_0x04_sends_will():
    broker = clocked_broker()
    watch = watcher(broker)
    client = FakeClient(broker)
    client.connect("device", will=Will("wills/device", b"gone"))
    client.send(Disconnect(ReasonCode.DISCONNECT_WITH_WILL_MESSAGE))
    assert watch.received() == [Publish("wills/device", b"gone")]


def test_normal_disconnect_drops_will():
    broker = clocked_broker()
    watch = watcher(broker)
    client = FakeClient(broker)
    client.connect("device", will=Will("wills/device", b"gone"))
    client.send(Disconnect())
    client.lose()
    assert watch.received() == []


def test_session_expires():
    broker = clocked_broker()
    client = FakeClient(broker)
    client.connect("s", clean_start=False, properties={EXPIRY: 10})
    client.lose()
    broker.reactor.advance(9)
    assert "s" in broker.sessions
    broker.reactor.advance(1)
    assert "s" not in broker.sessions


def test_disconnect_changes_expiry():
    broker = clocked_broker()
    client = FakeClient(broker)
    client.connect("s", clean_start=False, properties={EXPIRY: 10})
    client.send(Disconnect(0, {EXPIRY: 0}))
    assert "s" not in broker.sessions


def test_clean_session_v311_ends():
    broker = clocked_broker()
    client = FakeClient(broker, protocol_level=4)
    client.connect("s", clean_start=True)
    client.lose()
    assert "s" not in broker.sessions


def test_session_expiry_capped():
    broker = clocked_broker(settings=BrokerSettings(max_session_expiry_interval=100))
    connack = FakeClient(broker).connect("s", properties={EXPIRY: 5000})
    assert connack.properties[EXPIRY] == 100


def offline_subscriber(broker, qos=1):  # noqa: ANN001, ANN201
    client = FakeClient(broker)
    client.connect("sub", clean_start=False, properties={EXPIRY: 600})
    client.send(Subscribe(1, [Subscription("t", qos=qos)]))
    client.received()
    client.lose()


def publisher(broker):  # noqa: ANN001, ANN201
    client = FakeClient(broker)
    client.connect("pub")
    return client


def test_queued_message_expires():
    broker = clocked_broker()
    offline_subscriber(broker)
    pub = publisher(broker)
    pub.send(Publish("t", b"short", qos=1, packet_id=1, properties={MESSAGE_EXPIRY: 5}))
    pub.send(Publish("t", b"long", qos=1, packet_id=2, properties={MESSAGE_EXPIRY: 50}))
    broker.reactor.advance(10)
    again = FakeClient(broker)
    again.connect("sub", clean_start=False, properties={EXPIRY: 600})
    [delivered] = again.received()
    assert delivered.payload == b"long"
    assert delivered.properties[MESSAGE_EXPIRY] == 40


def test_offline_queue_bounded():
    broker = clocked_broker(settings=BrokerSettings(max_queued_messages=3))
    offline_subscriber(broker)
    pub = publisher(broker)
    for number in range(5):
        pub.send(Publish("t", str(number).encode(), qos=1, packet_id=number + 1))
    again = FakeClient(broker)
    again.connect("sub", clean_start=False, properties={EXPIRY: 600})
    payloads = [packet.payload for packet in again.received()]
    assert payloads == [b"0", b"1", b"2"]


def test_receive_maximum_limits_inflight():
    broker = clocked_broker()
    sub = FakeClient(broker)
    sub.connect("sub", properties={PropertyId.RECEIVE_MAXIMUM: 2})
    sub.send(Subscribe(1, [Subscription("t", qos=1)]))
    sub.received()
    pub = publisher(broker)
    for number in range(4):
        pub.send(Publish("t", str(number).encode(), qos=1, packet_id=number + 1))
    first = sub.received()
    assert [packet.payload for packet in first] == [b"0", b"1"]
    sub.send(Puback(first[0].packet_id))
    assert [packet.payload for packet in sub.received()] == [b"2"]


def test_resume_respects_receive_maximum():
    broker = clocked_broker()
    sub = FakeClient(broker)
    sub.connect("sub", clean_start=False, properties={EXPIRY: 600, RECEIVE_MAXIMUM: 3})
    sub.send(Subscribe(1, [Subscription("t", qos=1)]))
    sub.received()
    pub = publisher(broker)
    for number in range(3):
        pub.send(Publish("t", str(number).encode(), qos=1, packet_id=number + 1))
    first = sub.received()
    assert len(first) == 3
    sub.lose()

    again = FakeClient(broker)
    again.connect(
        "sub", clean_start=False, properties={EXPIRY: 600, RECEIVE_MAXIMUM: 1}
    )
    resent = again.received()
    assert [packet.payload for packet in resent] == [b"0"]
    assert resent[0].dup
    assert resent[0].packet_id == first[0].packet_id
    again.send(Puback(resent[0].packet_id))
    second = again.received()
    assert [packet.payload for packet in second] == [b"1"]
    assert second[0].dup
    assert second[0].packet_id == first[1].packet_id
    pub.send(Publish("t", b"3", qos=1, packet_id=4))
    assert again.received() == []
    again.send(Puback(second[0].packet_id))
    third = again.received()
    assert [packet.payload for packet in third] == [b"2"]
    assert third[0].packet_id == first[2].packet_id
    again.send(Puback(third[0].packet_id))
    fourth = again.received()
    assert [packet.payload for packet in fourth] == [b"3"]
    assert not fourth[0].dup


def test_resume_drops_too_large():
    broker = clocked_broker()
    sub = FakeClient(broker)
    sub.connect("sub", clean_start=False, properties={EXPIRY: 600, RECEIVE_MAXIMUM: 1})
    sub.send(Subscribe(1, [Subscription("t", qos=1)]))
    sub.received()
    pub = publisher(broker)
    pub.send(Publish("t", b"x" * 100, qos=1, packet_id=1))
    assert len(sub.received()) == 1
    sub.lose()

    again = FakeClient(broker)
    again.connect(
        "sub",
        clean_start=False,
        properties={EXPIRY: 600, RECEIVE_MAXIMUM: 1, MAXIMUM_PACKET_SIZE: 64},
    )
    assert again.received() == []
    pub.send(Publish("t", b"small", qos=1, packet_id=2))
    assert [packet.payload for packet in again.received()] == [b"small"]


def test_qos0_not_queued_offline():
    broker = clocked_broker()
    offline_subscriber(broker, qos=0)
    publisher(broker).send(Publish("t", b"lost"))
    again = FakeClient(broker)
    again.connect("sub", clean_start=False, properties={EXPIRY: 600})
    assert again.received() == []


def test_keep_alive_closes_after_one_and_half():
    broker = clocked_broker()
    client = FakeClient(broker)
    client.connect("c", keep_alive=10)
    broker.reactor.advance(14.5)
    assert not client.closing
    broker.reactor.advance(1)
    assert client.received() == [Disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)]


def test_shared_group_round_robin():
    broker = clocked_broker()
    members = []
    for name in ("a", "b"):
        member = FakeClient(broker)
        member.connect(name)
        member.send(Subscribe(1, [Subscription("$share/g/t")]))
        member.received()
        members.append(member)
    pub = publisher(broker)
    for number in range(4):
        pub.send(Publish("t", str(number).encode()))
    assert [p.payload for p in members[0].received()] == [b"0", b"2"]
    assert [p.payload for p in members[1].received()] == [b"1", b"3"]


class BufferingTransport(StringTransport):
    """A StringTransport that exposes its unread bytes as TCP's buffer does."""

    offset = 0
    _tempDataLen = 0  # noqa: N815 (Twisted attribute)

    @property
    def dataBuffer(self) -> bytes:  # noqa: N802 (Twisted's attribute name)
        return self.value()


def test_slow_reader_drops_qos0():
    broker = clocked_broker()
    sub = FakeClient(broker, transport=BufferingTransport())
    sub.connect("sub")
    sub.send(Subscribe(1, [Subscription("t")]))
    sub.received()
    sub.protocol.pauseProducing()
    pub = publisher(broker)
    payload = b"x" * 65536
    for _ in range(80):
        pub.send(Publish("t", payload))
    delivered = sub.received()
    assert 60 < len(delivered) < 80
    pub.send(Publish("t", b"after"))
    assert sub.received()[-1].payload == b"after"
