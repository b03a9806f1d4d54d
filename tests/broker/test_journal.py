"""The journal: what the broker writes to its store, waits on and restores."""

from __future__ import annotations

from dataclasses import replace

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mqttauth.auth.interfaces import Identity
from mqttauth.broker.wills import identity_from_record, will_record
from mqttauth.mqtt.constants import PropertyId
from mqttauth.mqtt.packets import (
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Subscription,
    Will,
)
from mqttauth.store.encoding import decode_value, encode_value
from mqttauth.store.interfaces import ISessionStore
from mqttauth.store.memory import MemoryStore
from mqttauth.store.records import SENT
from tests.broker.clocked import START, FakeClient, clocked_broker

EXPIRY = PropertyId.SESSION_EXPIRY_INTERVAL


@implementer(ISessionStore)
class ControlledStore(MemoryStore):
    """A durable store whose commits complete when the test says so."""

    durable = True

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[Deferred] = []
        self.writes = 0

    def commit(self) -> Deferred:
        deferred: Deferred = Deferred()
        self.commits.append(deferred)
        return deferred

    def complete(self) -> None:
        commits, self.commits = self.commits, []
        for deferred in commits:
            deferred.callback(None)

    def put_session(self, record) -> None:  # noqa: ANN001
        self.writes += 1
        super().put_session(record)

    def put_message(self, client_id, record) -> None:  # noqa: ANN001
        self.writes += 1
        super().put_message(client_id, record)


def test_controlled_store_provides_interface():
    assert verifyObject(ISessionStore, ControlledStore())


def persistent_subscriber(broker, client_id="sub", qos=1):  # noqa: ANN001, ANN201
    client = FakeClient(broker)
    client.connect(client_id, clean_start=False, properties={EXPIRY: 600})
    client.send(Subscribe(1, [Subscription("t/#", qos=qos)]))
    client.received()
    return client


def publisher(broker):  # noqa: ANN001, ANN201
    client = FakeClient(broker)
    client.connect("pub")
    return client


def test_puback_waits_for_commit():
    store = ControlledStore()
    broker = clocked_broker(store=store)
    pub = publisher(broker)
    pub.send(Publish("t/a", b"x", qos=1, packet_id=1))
    assert pub.received() == []
    broker.reactor.advance(0)
    assert len(store.commits) == 1
    assert pub.received() == []
    store.complete()
    assert pub.received() == [Puback(1, 0x10)]


def test_one_commit_per_turn():
    store = ControlledStore()
    broker = clocked_broker(store=store)
    pub = publisher(broker)
    for packet_id in (1, 2, 3):
        pub.send(Publish("t/a", b"x", qos=1, packet_id=packet_id))
    broker.reactor.advance(0)
    assert len(store.commits) == 1


def test_delivery_held_until_commit():
    store = ControlledStore()
    broker = clocked_broker(store=store)
    sub = persistent_subscriber(broker)
    broker.reactor.advance(0)
    store.complete()
    pub = publisher(broker)
    pub.send(Publish("t/a", b"held", qos=1, packet_id=1))
    broker.reactor.advance(0)
    assert sub.received() == []
    store.complete()
    [delivered] = sub.received()
    assert delivered.payload == b"held"


def test_qos2_packet_id_committed_before_send():
    store = ControlledStore()
    broker = clocked_broker(store=store)
    sub = persistent_subscriber(broker, qos=2)
    broker.reactor.advance(0)
    store.complete()
    publisher(broker).send(Publish("t/a", b"once", qos=2, packet_id=1))
    broker.reactor.advance(0)
    [record] = store.load().messages["sub"]
    assert record.state == SENT
    assert record.packet_id is not None
    assert sub.received() == []
    store.complete()
    [delivered] = sub.received()
    assert delivered.packet_id == record.packet_id
    assert not delivered.dup


def test_queued_packet_id_committed_before_send():
    store = ControlledStore()
    broker = clocked_broker(store=store)
    persistent_subscriber(broker, qos=2).lose()
    pub = publisher(broker)
    pub.send(Publish("t/a", b"first", qos=2, packet_id=1))
    pub.send(Publish("t/a", b"second", qos=2, packet_id=2))
    broker.reactor.advance(0)
    store.complete()
    sub = FakeClient(broker)
    sub.connect("sub", clean_start=False, properties={EXPIRY: 600})
    # The session resumes after a commit, then sends after another one.
    broker.reactor.advance(0)
    store.complete()
    broker.reactor.advance(0)
    records = store.load().messages["sub"]
    assert [record.state for record in records] == [SENT, SENT]
    assert sub.received() == []
    store.complete()
    delivered = sub.received()
    assert [packet.payload for packet in delivered] == [b"first", b"second"]
    assert [packet.packet_id for packet in delivered] == [
        record.packet_id for record in records
    ]


def test_resend_waits_for_commit():
    store = ControlledStore()
    broker = clocked_broker(store=store)
    sub = persistent_subscriber(broker, qos=2)
    broker.reactor.advance(0)
    store.complete()
    publisher(broker).send(Publish("t/a", b"once", qos=2, packet_id=1))
    broker.reactor.advance(0)
    sub.lose()
    again = FakeClient(broker)
    again.connect("sub", clean_start=False, properties={EXPIRY: 600})
    broker.reactor.advance(0)
    assert again.received() == []
    store.complete()
    [resent] = again.received()
    assert resent.payload == b"once"
    assert resent.dup


def test_publish_during_resume_sent_once():
    store = ControlledStore()
    broker = clocked_broker(store=store)
    sub = persistent_subscriber(broker, qos=2)
    broker.reactor.advance(0)
    store.complete()
    pub = publisher(broker)
    pub.send(Publish("t/a", b"first", qos=2, packet_id=1))
    broker.reactor.advance(0)
    store.complete()
    [first] = sub.received()
    sub.lose()
    again = FakeClient(broker)
    again.connect("sub", clean_start=False, properties={EXPIRY: 600})
    # Arrives before the commit that lets the resumed session send.
    pub.send(Publish("t/a", b"second", qos=2, packet_id=2))
    for _ in range(3):
        broker.reactor.advance(0)
        store.complete()
    delivered = again.received()
    assert [packet.payload for packet in delivered] == [b"first", b"second"]
    assert [packet.dup for packet in delivered] == [True, False]
    assert delivered[0].packet_id == first.packet_id
    assert delivered[1].packet_id != first.packet_id


def test_dropped_large_message_frees_window():
    store = ControlledStore()
    broker = clocked_broker(store=store)
    limits = {
        EXPIRY: 600,
        PropertyId.RECEIVE_MAXIMUM: 1,
        PropertyId.MAXIMUM_PACKET_SIZE: 100,
    }
    sub = FakeClient(broker)
    sub.connect("sub", clean_start=False, properties=limits)
    sub.send(Subscribe(1, [Subscription("t/#", qos=1)]))
    sub.lose()
    pub = publisher(broker)
    pub.send(Publish("t/a", b"x" * 200, qos=1, packet_id=1))
    pub.send(Publish("t/a", b"small", qos=1, packet_id=2))
    broker.reactor.advance(0)
    store.complete()
    again = FakeClient(broker)
    again.connect("sub", clean_start=False, properties=limits)
    # Three commits: the resume, the packet id of the large message (which
    # is then dropped, MQTT-3.1.2-25) and the packet id of the small one.
    for _ in range(3):
        broker.reactor.advance(0)
        store.complete()
    delivered = again.received()
    assert [packet.payload for packet in delivered] == [b"small"]
    records = store.load().messages["sub"]
    assert [record.payload for record in records] == [b"small"]


def test_clean_session_costs_nothing():
    store = ControlledStore()
    broker = clocked_broker(store=store)
    sub = FakeClient(broker)
    sub.connect("sub")
    sub.send(Subscribe(1, [Subscription("t/#", qos=1)]))
    publisher(broker).send(Publish("t/a", b"x", qos=1, packet_id=1))
    assert store.writes == 0


def test_acknowledged_message_survives_restart():
    store = MemoryStore()
    first = clocked_broker(store=store)
    persistent_subscriber(first).lose()
    pub = publisher(first)
    pub.send(Publish("t/a", b"kept", qos=1, packet_id=1))
    pub.send(Publish("t/r", b"retained", qos=1, packet_id=2, retain=True))
    assert len(pub.received()) == 2
    second = clocked_broker(store=store)
    again = FakeClient(second)
    assert again.connect(
        "sub", clean_start=False, properties={EXPIRY: 600}
    ).session_present
    payloads = [packet.payload for packet in again.received()]
    assert payloads == [b"kept", b"retained"]
    assert second.retained.get("t/r").payload == b"retained"


def test_inflight_resent_after_restart():
    store = MemoryStore()
    first = clocked_broker(store=store)
    sub = persistent_subscriber(first)
    publisher(first).send(Publish("t/a", b"once", qos=2, packet_id=1))
    [sent] = sub.received()
    second = clocked_broker(store=store)
    again = FakeClient(second)
    again.connect("sub", clean_start=False, properties={EXPIRY: 600})
    [resent] = again.received()
    assert resent.dup
    assert resent.packet_id == sent.packet_id
    assert resent.payload == b"once"


def test_released_resends_pubrel_after_restart():
    store = MemoryStore()
    first = clocked_broker(store=store)
    sub = persistent_subscriber(first, qos=2)
    publisher(first).send(Publish("t/a", b"x", qos=2, packet_id=1))
    [sent] = sub.received()
    sub.send(Pubrec(sent.packet_id))
    assert sub.received() == [Pubrel(sent.packet_id)]
    second = clocked_broker(store=store)
    again = FakeClient(second)
    again.connect("sub", clean_start=False, properties={EXPIRY: 600})
    assert again.received() == [Pubrel(sent.packet_id)]


def test_unsendable_resend_keeps_packet_id():
    store = MemoryStore()
    first = clocked_broker(store=store)
    sub = persistent_subscriber(first, qos=2)
    publisher(first).send(Publish("t/a", b"x" * 200, qos=2, packet_id=1))
    [large] = sub.received()
    second = clocked_broker(store=store)
    again = FakeClient(second)
    again.connect(
        "sub",
        clean_start=False,
        properties={EXPIRY: 600, PropertyId.MAXIMUM_PACKET_SIZE: 100},
    )
    # The client may still wait for PUBREL for the large message, so a new
    # PUBLISH under its packet id would look like a copy of it.
    assert again.received() == [Pubrel(large.packet_id)]
    publisher(second).send(Publish("t/a", b"small", qos=2, packet_id=1))
    [small] = again.received()
    assert small.payload == b"small"
    assert small.packet_id != large.packet_id
    again.send(Pubcomp(large.packet_id))
    records = store.load().messages["sub"]
    assert [record.payload for record in records] == [b"small"]


def test_inbound_qos2_not_duplicated_after_restart():
    store = MemoryStore()
    first = clocked_broker(store=store)
    persistent_subscriber(first).lose()
    pub = FakeClient(first)
    pub.connect("pub", clean_start=False, properties={EXPIRY: 600})
    pub.send(Publish("t/a", b"x", qos=2, packet_id=5))
    assert pub.received() == [Pubrec(5)]
    second = clocked_broker(store=store)
    pub2 = FakeClient(second)
    pub2.connect("pub", clean_start=False, properties={EXPIRY: 600})
    pub2.send(Publish("t/a", b"x", qos=2, packet_id=5, dup=True))
    pub2.send(Pubrel(5))
    assert pub2.received() == [Pubrec(5), Pubcomp(5)]
    again = FakeClient(second)
    again.connect("sub", clean_start=False, properties={EXPIRY: 600})
    assert len(again.received()) == 1


def test_expiry_counts_across_restart():
    store = MemoryStore()
    first = clocked_broker(store=store)
    persistent_subscriber(first).lose()
    pub = publisher(first)
    pub.send(
        Publish(
            "t/a",
            b"x",
            qos=1,
            packet_id=1,
            properties={PropertyId.MESSAGE_EXPIRY_INTERVAL: 30},
        )
    )
    clock = Clock()
    clock.advance(START + 10)
    second = clocked_broker(store=store, clock=clock)
    again = FakeClient(second)
    again.connect("sub", clean_start=False, properties={EXPIRY: 600})
    [delivered] = again.received()
    assert delivered.properties[PropertyId.MESSAGE_EXPIRY_INTERVAL] == 20


def test_expired_session_dropped_at_start():
    store = MemoryStore()
    first = clocked_broker(store=store)
    client = FakeClient(first)
    client.connect("s", clean_start=False, properties={EXPIRY: 5})
    client.lose()
    clock = Clock()
    clock.advance(START + 6)
    second = clocked_broker(store=store, clock=clock)
    assert "s" not in second.sessions
    assert "s" not in store.load().sessions


def test_delayed_will_survives_restart():
    store = MemoryStore()
    first = clocked_broker(store=store)
    device = FakeClient(first)
    device.connect(
        "device",
        clean_start=False,
        properties={EXPIRY: 600},
        will=Will(
            "wills/device", b"gone", properties={PropertyId.WILL_DELAY_INTERVAL: 30}
        ),
    )
    device.lose()
    assert "device" in store.load().wills
    second = clocked_broker(store=store)
    watch = FakeClient(second)
    watch.connect("watcher")
    watch.send(Subscribe(1, [Subscription("wills/#")]))
    watch.received()
    second.reactor.advance(30)
    assert watch.received() == [Publish("wills/device", b"gone")]
    assert "device" not in store.load().wills


def test_will_identity_keeps_anonymous():
    will = Will("wills/device", b"gone")
    for anonymous in (True, False):
        identity = Identity("c9", "c9", anonymous=anonymous)
        record = will_record("c9", will, identity)
        # The SQLite store keeps the identity through this encoding.
        stored = decode_value(encode_value(record.identity_attributes))
        restored = identity_from_record(replace(record, identity_attributes=stored))
        assert restored.anonymous is anonymous
