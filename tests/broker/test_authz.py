"""The authorizer chain at every point where the broker asks it."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mqttauth.auth.interfaces import IAuthorizer, Identity
from mqttauth.broker.authz import AuthorizerChain
from mqttauth.broker.message import Message
from mqttauth.broker.settings import BrokerSettings
from mqttauth.mqtt.constants import ReasonCode
from mqttauth.mqtt.packets import (
    Puback,
    Publish,
    Suback,
    Subscribe,
    Subscription,
    Will,
)
from tests.broker.clocked import FakeClient, clocked_broker
from tests.support.inprocess import AllowAllAuthorizer

IDENTITY = Identity("alice", "c")


@implementer(IAuthorizer)
class SecretAuthorizer:
    """Denies everything under ``secret``; no decision on anything else."""

    def __init__(self) -> None:
        self.filters: list[str] = []

    def authorize_publish(self, identity: Identity, topic: str, qos: int, retain: bool):  # noqa: ANN201
        return False if topic.startswith("secret") else None

    def authorize_subscribe(self, identity: Identity, topic_filter: str, qos: int):  # noqa: ANN201
        self.filters.append(topic_filter)
        return False if topic_filter.startswith("secret") else None


@implementer(IAuthorizer)
class LaterAuthorizer:
    """Answers every publish with a Deferred the test fires."""

    def __init__(self) -> None:
        self.pending: list[Deferred] = []

    def authorize_publish(self, identity: Identity, topic: str, qos: int, retain: bool):  # noqa: ANN201
        deferred: Deferred = Deferred()
        self.pending.append(deferred)
        return deferred

    def authorize_subscribe(self, identity: Identity, topic_filter: str, qos: int):  # noqa: ANN201
        return True


@implementer(IAuthorizer)
class Undecided:
    def authorize_publish(self, identity, topic, qos, retain):  # noqa: ANN001, ANN201
        return None

    def authorize_subscribe(self, identity, topic_filter, qos):  # noqa: ANN001, ANN201
        return None


def test_authorizers_provide_interface():
    for authorizer in (SecretAuthorizer(), LaterAuthorizer(), Undecided()):
        assert verifyObject(IAuthorizer, authorizer)


def test_chain_all_undecided_denies():
    assert (
        AuthorizerChain([Undecided(), Undecided()]).publish(IDENTITY, "t", 0, False)
        is False
    )


def test_chain_first_decision_wins():
    chain = AuthorizerChain([Undecided(), AllowAllAuthorizer()])
    assert chain.publish(IDENTITY, "t", 0, False) is True


def test_chain_plain_values_no_deferred():
    chain = AuthorizerChain([SecretAuthorizer(), AllowAllAuthorizer()])
    assert chain.subscribe(IDENTITY, "a/b", 0) is True


def test_chain_deferred_continues():
    later = LaterAuthorizer()
    chain = AuthorizerChain([later, AllowAllAuthorizer()])
    results = []
    chain.publish(IDENTITY, "t", 0, False).addCallback(results.append)
    later.pending[0].callback(None)
    assert results == [True]


def secret_broker(**settings):  # noqa: ANN003, ANN201
    return clocked_broker(
        settings=BrokerSettings(**settings),
        authorizers=[SecretAuthorizer(), AllowAllAuthorizer()],
    )


def subscriber(broker, topic_filter="#", level=5):  # noqa: ANN001, ANN201
    client = FakeClient(broker, protocol_level=level)
    client.connect("sub")
    client.send(Subscribe(1, [Subscription(topic_filter, qos=1)]))
    client.received()
    return client


def test_denied_publish_v5_0x87():
    broker = secret_broker()
    sub = subscriber(broker, "+/x")
    pub = FakeClient(broker)
    pub.connect("pub")
    pub.send(Publish("secret/x", b"x", qos=1, packet_id=1))
    assert pub.received() == [Puback(1, ReasonCode.NOT_AUTHORIZED)]
    assert sub.received() == []


def test_denied_publish_v311_acknowledged():
    broker = secret_broker()
    sub = subscriber(broker, "+/x")
    pub = FakeClient(broker, protocol_level=4)
    pub.connect("pub")
    pub.send(Publish("secret/x", b"x", qos=1, packet_id=1))
    assert pub.received() == [Puback(1)]
    assert sub.received() == []


def test_denied_publish_v311_disconnects():
    broker = secret_broker(disconnect_on_denied_publish=True)
    pub = FakeClient(broker, protocol_level=4)
    pub.connect("pub")
    pub.send(Publish("secret/x", b"x", qos=1, packet_id=1))
    assert pub.closing


def test_denied_subscribe_codes():
    broker = secret_broker()
    for level, code in ((5, ReasonCode.NOT_AUTHORIZED), (4, 0x80)):
        client = FakeClient(broker, protocol_level=level)
        client.connect(f"c{level}")
        client.send(Subscribe(1, [Subscription("secret/#"), Subscription("open")]))
        assert client.received() == [Suback(1, [code, 0])]


def test_shared_prefix_removed():
    authorizer = SecretAuthorizer()
    broker = clocked_broker(authorizers=[authorizer, AllowAllAuthorizer()])
    subscriber(broker, "$share/group/a/b")
    assert authorizer.filters == ["a/b"]


def test_retained_filtered_per_topic():
    broker = secret_broker()
    broker.publish(Message("open/x", b"o", 0, True))
    broker.publish(Message("secret/x", b"s", 0, True))
    client = FakeClient(broker)
    client.connect("sub")
    client.send(Subscribe(1, [Subscription("+/x")]))
    packets = client.received()
    assert packets == [Suback(1, [0]), Publish("open/x", b"o", retain=True)]


def test_will_checked_when_published():
    broker = secret_broker()
    sub = subscriber(broker, "+/will")
    device = FakeClient(broker)
    device.connect("device", will=Will("secret/will", b"w"))
    device.lose()
    other = FakeClient(broker)
    other.connect("other", will=Will("open/will", b"w"))
    other.lose()
    assert [packet.topic for packet in sub.received()] == ["open/will"]


def test_deferred_publish_keeps_order():
    later = LaterAuthorizer()
    broker = clocked_broker(authorizers=[later])
    sub = subscriber(broker, "t")
    later.pending.clear()
    pub = FakeClient(broker)
    pub.connect("pub")
    pub.send(Publish("t", b"1"))
    pub.send(Publish("t", b"2"))
    assert len(later.pending) == 1
    later.pending[0].callback(True)
    later.pending[1].callback(True)
    assert [packet.payload for packet in sub.received()] == [b"1", b"2"]


def test_revalidate_removes_denied():
    allowed = {"a/#"}

    @implementer(IAuthorizer)
    class Switchable:
        def authorize_publish(self, identity, topic, qos, retain):  # noqa: ANN001, ANN201
            return True

        def authorize_subscribe(self, identity, topic_filter, qos):  # noqa: ANN001, ANN201
            return topic_filter in allowed

    broker = clocked_broker(authorizers=[Switchable()])
    sub = subscriber(broker, "a/#")
    allowed.clear()
    broker.revalidate_subscriptions()
    assert broker.sessions["sub"].subscriptions == {}
    FakeClient(broker).connect("pub")
    broker.publish(Message("a/b", b"x", 0, False))
    assert sub.received() == []


def test_revalidate_covers_pending_subscribe():
    @implementer(IAuthorizer)
    class Stale:
        """Decides the first SUBSCRIBE later, by the rules in force when asked."""

        def __init__(self) -> None:
            self.pending: list[Deferred] = []
            self.allowed = True

        def authorize_publish(self, identity, topic, qos, retain):  # noqa: ANN001, ANN201
            return True

        def authorize_subscribe(self, identity, topic_filter, qos):  # noqa: ANN001, ANN201
            if not self.pending:
                deferred: Deferred = Deferred()
                self.pending.append(deferred)
                return deferred
            return self.allowed

    stale = Stale()
    broker = clocked_broker(authorizers=[stale])
    sub = FakeClient(broker)
    sub.connect("sub")
    sub.send(Subscribe(1, [Subscription("a/#", qos=1)]))
    # A reload ends while the decision is pending, and the new rules deny a/#.
    stale.allowed = False
    broker.revalidate_subscriptions()
    stale.pending[0].callback(True)
    assert broker.sessions["sub"].subscriptions == {}
    sub.received()
    FakeClient(broker).connect("pub")
    broker.publish(Message("a/b", b"x", 0, False))
    assert sub.received() == []
