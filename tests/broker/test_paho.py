"""Interoperability with paho-mqtt 2.x over loopback, MQTT 3.1.1 and 5.0."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.support.inprocess import in_thread
from tests.support.pahoclient import (
    MQTTv5,
    MQTTv311,
    PahoClient,
    connect_properties,
    publish_properties,
)

VERSIONS = [pytest.param(MQTTv311, id="3.1.1"), pytest.param(MQTTv5, id="5.0")]


def persistent(port: int, client_id: str, protocol) -> PahoClient:  # noqa: ANN001
    """Return a client whose session outlives its connection."""
    return PahoClient(port, client_id, protocol, clean=False)


def connect_persistent(client: PahoClient):  # noqa: ANN201
    if client.protocol == MQTTv5:
        return client.connect(properties=connect_properties(SessionExpiryInterval=300))
    return client.connect()


@pytest.mark.parametrize("protocol", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest_twisted.inlineCallbacks
def test_publish_reaches_subscriber(broker, protocol, qos):
    def scenario() -> None:
        subscriber = PahoClient(broker.port, "sub", protocol)
        subscriber.connect()
        subscriber.subscribe("sensors/+/temp", qos=2)
        publisher = PahoClient(broker.port, "pub", protocol)
        publisher.connect()
        publisher.publish("sensors/a/temp", b"21.5", qos=qos)
        message = subscriber.next_message()
        assert message.topic == "sensors/a/temp"
        assert message.payload == b"21.5"
        assert message.qos == qos
        publisher.disconnect()
        subscriber.disconnect()

    yield in_thread(scenario)


@pytest.mark.parametrize("protocol", VERSIONS)
@pytest.mark.parametrize("granted", [0, 1])
@pytest_twisted.inlineCallbacks
def test_delivery_qos_is_minimum(broker, protocol, granted):
    def scenario() -> None:
        subscriber = PahoClient(broker.port, "sub", protocol)
        subscriber.connect()
        subscriber.subscribe("t", qos=granted)
        publisher = PahoClient(broker.port, "pub", protocol)
        publisher.connect()
        publisher.publish("t", b"x", qos=2)
        assert subscriber.next_message().qos == granted
        publisher.disconnect()
        subscriber.disconnect()

    yield in_thread(scenario)


@pytest.mark.parametrize("protocol", VERSIONS)
@pytest_twisted.inlineCallbacks
def test_retained_reaches_late_subscriber(broker, protocol):
    def scenario() -> None:
        publisher = PahoClient(broker.port, "pub", protocol)
        publisher.connect()
        publisher.publish("status/door", b"open", qos=1, retain=True)
        subscriber = PahoClient(broker.port, "sub", protocol)
        subscriber.connect()
        subscriber.subscribe("status/#", qos=1)
        message = subscriber.next_message()
        assert message.payload == b"open"
        assert message.retain
        publisher.publish("status/door", b"", qos=1, retain=True)
        cleared = subscriber.next_message()
        assert cleared.payload == b""
        late = PahoClient(broker.port, "late", protocol)
        late.connect()
        late.subscribe("status/#", qos=1)
        assert late.no_message()
        for client in (publisher, subscriber, late):
            client.disconnect()

    yield in_thread(scenario)


@pytest.mark.parametrize("protocol", VERSIONS)
@pytest_twisted.inlineCallbacks
def test_will_published_on_drop(broker, protocol):
    def scenario() -> None:
        watcher = PahoClient(broker.port, "watcher", protocol)
        watcher.connect()
        watcher.subscribe("wills/#", qos=1)
        device = PahoClient(broker.port, "device", protocol)
        device.set_will("wills/device", b"gone", qos=1)
        device.connect()
        device.drop()
        message = watcher.next_message()
        assert message.topic == "wills/device"
        assert message.payload == b"gone"
        watcher.disconnect()

    yield in_thread(scenario)


@pytest.mark.parametrize("protocol", VERSIONS)
@pytest_twisted.inlineCallbacks
def test_will_dropped_on_disconnect(broker, protocol):
    def scenario() -> None:
        watcher = PahoClient(broker.port, "watcher", protocol)
        watcher.connect()
        watcher.subscribe("wills/#", qos=1)
        device = PahoClient(broker.port, "device", protocol)
        device.set_will("wills/device", b"gone", qos=1)
        device.connect()
        device.disconnect()
        assert watcher.no_message()
        watcher.disconnect()

    yield in_thread(scenario)


@pytest.mark.parametrize("protocol", VERSIONS)
@pytest_twisted.inlineCallbacks
def test_session_resumes_with_queued(broker, protocol):
    def scenario() -> None:
        subscriber = persistent(broker.port, "sub", protocol)
        connect_persistent(subscriber)
        subscriber.subscribe("jobs/#", qos=1)
        subscriber.disconnect()
        publisher = PahoClient(broker.port, "pub", protocol)
        publisher.connect()
        for number in range(5):
            publisher.publish(f"jobs/{number}", str(number).encode(), qos=1)
        publisher.disconnect()
        again = persistent(broker.port, "sub", protocol)
        flags, _, _ = connect_persistent(again)
        assert flags.session_present
        payloads = [again.next_message().payload for _ in range(5)]
        assert payloads == [b"0", b"1", b"2", b"3", b"4"]
        again.disconnect()

    yield in_thread(scenario)


@pytest.mark.parametrize("protocol", VERSIONS)
@pytest_twisted.inlineCallbacks
def test_takeover_ends_first(broker, protocol):
    def scenario() -> None:
        first = PahoClient(broker.port, "same", protocol)
        first.connect()
        second = PahoClient(broker.port, "same", protocol)
        second.connect()
        assert first.disconnected.wait(5)
        if protocol == MQTTv5:
            assert first.disconnect_reason.value == 0x8E
        second.subscribe("t", qos=1)
        second.publish("t", b"still here", qos=1)
        assert second.next_message().payload == b"still here"
        second.disconnect()
        first.client.loop_stop()

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_shared_subscription_spreads(broker):
    def scenario() -> None:
        members = [PahoClient(broker.port, f"worker{n}", MQTTv5) for n in range(2)]
        for member in members:
            member.connect()
            member.subscribe("$share/workers/jobs/#", qos=1)
        publisher = PahoClient(broker.port, "pub", MQTTv5)
        publisher.connect()
        for number in range(10):
            publisher.publish(f"jobs/{number}", str(number).encode(), qos=1)
        received = [[], []]
        for index, member in enumerate(members):
            while True:
                try:
                    received[index].append(member.next_message(timeout=1).payload)
                except Exception:
                    break
        assert len(received[0]) == 5
        assert len(received[1]) == 5
        assert sorted(received[0] + received[1]) == sorted(
            str(n).encode() for n in range(10)
        )
        for client in (*members, publisher):
            client.disconnect()

    yield in_thread(scenario)


@pytest_twisted.inlineCallbacks
def test_properties_forwarded(broker):
    def scenario() -> None:
        subscriber = PahoClient(broker.port, "sub", MQTTv5)
        subscriber.connect()
        subscriber.subscribe("req", qos=1)
        publisher = PahoClient(broker.port, "pub", MQTTv5)
        publisher.connect()
        properties = publish_properties(
            ResponseTopic="resp/1",
            CorrelationData=b"\x01\x02",
            ContentType="text/plain",
            PayloadFormatIndicator=1,
            UserProperty=[("a", "1"), ("b", "2")],
        )
        publisher.publish("req", b"hi", qos=1, properties=properties)
        received = subscriber.next_message().properties
        assert received.ResponseTopic == "resp/1"
        assert received.CorrelationData == b"\x01\x02"
        assert received.ContentType == "text/plain"
        assert received.PayloadFormatIndicator == 1
        assert received.UserProperty == [("a", "1"), ("b", "2")]
        publisher.disconnect()
        subscriber.disconnect()

    yield in_thread(scenario)
