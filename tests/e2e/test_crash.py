"""Acknowledged messages survive SIGKILL of the broker (``--data-dir``).

A publisher streams numbered QoS 1 and QoS 2 messages to a persistent
subscriber that goes offline now and then, while the broker process is
killed with SIGKILL at random moments and restarted on the same data
directory.  Both clients are raw-packet MQTT 5.0 clients that keep their
own session state across connections, as the specification requires
(resending unacknowledged PUBLISH and PUBREL packets, remembering QoS 2
packet ids until PUBREL), so the counts below judge the broker alone.

At the end every message whose PUBACK or PUBREC the publisher received
has arrived: QoS 1 at least once, QoS 2 exactly once.  Retained messages
and both subscriptions, with their options, are intact, and the
subscriber's session was present on every reconnect.
"""

from __future__ import annotations

import collections
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mqttauth.mqtt.constants import PropertyId
from mqttauth.mqtt.packets import (
    Disconnect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
)
from tests.support.process import BrokerProcess, start_broker
from tests.support.rawclient import ConnectionClosedError, RawClient

pytestmark = pytest.mark.e2e

SEED = 20240606
KILLS = 5
#: Unacknowledged PUBLISH packets the publisher keeps in flight.
WINDOW = 16
NEVER_EXPIRES = 0xFFFFFFFF
PERSISTENT = {PropertyId.SESSION_EXPIRY_INTERVAL: NEVER_EXPIRES}
RETAINED = {"retained/a": b"alpha", "retained/b": b"beta", "retained/c": b"gamma"}
#: Seconds a stage of the test may take before it fails.
DEADLINE = 30.0


class Broker:
    """The broker of the moment: restarted on one data directory."""

    def __init__(self, data_dir: Path, runs: Path) -> None:
        self.data_dir = data_dir
        self.runs = runs
        self.process: BrokerProcess | None = None
        self.logs: list[str] = []
        #: The port clients may connect to, or None while no broker runs.
        self.port: int | None = None

    def start(self) -> None:
        cwd = self.runs / f"run-{len(self.logs) + 1}"
        cwd.mkdir()
        self.process = start_broker(
            "--authenticator",
            "anonymous",
            "--data-dir",
            str(self.data_dir),
            # Room for everything published while the subscriber is away,
            # so no message is dropped for a full queue.
            "--max-queued-messages",
            "100000",
            cwd=cwd,
        )
        self.logs.append("")
        self.port = self.process.port

    def kill(self) -> None:
        assert self.process is not None
        self.port = None
        self.process.kill()
        self.logs[-1] = self.process.log()

    def stop(self) -> int:
        assert self.process is not None
        self.port = None
        status = self.process.stop()
        self.logs[-1] = self.process.log()
        return status

    def all_logs(self) -> str:
        if self.process is not None:
            self.logs[-1] = self.process.log()
        return "\n".join(
            f"--- run {number} ---\n{log}" for number, log in enumerate(self.logs, 1)
        )


def connect(
    broker: Broker, client_id: str, stop: threading.Event
) -> tuple[RawClient, bool] | None:
    """Connect with Clean Start 0 to the running broker, retrying until it runs.

    Returns the client and the CONNACK's Session Present flag, or None once
    ``stop`` is set.
    """
    while not stop.is_set():
        port = broker.port
        if port is None:
            time.sleep(0.02)
            continue
        try:
            client = RawClient(port, timeout=2.0)
            connack = client.connect(
                client_id, clean_start=False, keep_alive=60, properties=PERSISTENT
            )
        except (OSError, ConnectionClosedError, TimeoutError):
            time.sleep(0.02)
            continue
        if connack.reason_code != 0:
            raise AssertionError(f"{client_id}: CONNACK {connack!r}")
        return client, connack.session_present
    return None


def receive(client: RawClient, timeout: float) -> Any:
    """Return the next packet, or None after ``timeout`` seconds.

    Raises ConnectionClosedError or OSError when the connection is gone.
    """
    try:
        return client.receive(timeout=timeout)
    except TimeoutError:
        return None


class Publisher:
    """Publishes numbered messages, odd numbers at QoS 1 and even at QoS 2.

    ``acknowledged`` contains the numbers whose PUBACK or PUBREC arrived with a
    success code.  In-flight packets are resent after every reconnect.
    """

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.acknowledged: set[int] = set()
        self.rejected: list[tuple[int, int]] = []
        self.connections = 0
        self.sessions_lost = 0
        self.published = 0
        #: Packet id to [number, "publish" or "pubrel"].
        self.in_flight: dict[int, list[Any]] = {}
        self.finish = threading.Event()
        self.done = threading.Event()
        self.stop = threading.Event()
        self._next_packet_id = 0

    def _packet_id(self) -> int:
        while True:
            self._next_packet_id = self._next_packet_id % 65535 + 1
            if self._next_packet_id not in self.in_flight:
                return self._next_packet_id

    def _publish(self, number: int, dup: bool = False, packet_id: int = 0) -> Publish:
        return Publish(
            "crash/stream",
            str(number).encode(),
            qos=1 if number % 2 else 2,
            dup=dup,
            packet_id=packet_id,
        )

    def run(self) -> None:
        while not self.done.is_set():
            connected = connect(self.broker, "crash-publisher", self.stop)
            if connected is None:
                return
            client, session_present = connected
            try:
                self._resend(client, session_present)
                self._stream(client)
            except (OSError, ConnectionClosedError):
                pass
            finally:
                client.close()

    def _resend(self, client: RawClient, session_present: bool) -> None:
        self.connections += 1
        if not session_present:
            # A new session, or the broker lost it.  MQTT 5.0 has the client
            # drop its own state too, so those messages were never
            # acknowledged.
            if self.connections > 1:
                self.sessions_lost += 1
            self.in_flight.clear()
            return
        for packet_id, (number, stage) in sorted(self.in_flight.items()):
            if stage == "publish":
                client.send(self._publish(number, dup=True, packet_id=packet_id))
            else:
                client.send(Pubrel(packet_id))

    def _stream(self, client: RawClient) -> None:
        while not self.stop.is_set():
            if self.finish.is_set() and not self.in_flight:
                self.done.set()
                client.send(Disconnect())
                return
            waiting = sum(
                1 for _, stage in self.in_flight.values() if stage == "publish"
            )
            sending = not self.finish.is_set() and waiting < WINDOW
            if sending:
                self.published += 1
                packet_id = self._packet_id()
                self.in_flight[packet_id] = [self.published, "publish"]
                client.send(self._publish(self.published, packet_id=packet_id))
                # At most about 500 messages a second.
                time.sleep(0.002)
            packet = receive(client, 0.001 if sending else 0.05)
            if packet is not None:
                self._handle(client, packet)

    def _handle(self, client: RawClient, packet: Any) -> None:
        entry = self.in_flight.get(getattr(packet, "packet_id", None))
        if entry is None:
            return
        number = entry[0]
        if isinstance(packet, (Puback, Pubrec)) and packet.reason_code >= 0x80:
            self.rejected.append((number, packet.reason_code))
            del self.in_flight[packet.packet_id]
        elif isinstance(packet, Puback):
            self.acknowledged.add(number)
            del self.in_flight[packet.packet_id]
        elif isinstance(packet, Pubrec):
            self.acknowledged.add(number)
            entry[1] = "pubrel"
            client.send(Pubrel(packet.packet_id))
        elif isinstance(packet, Pubcomp):
            del self.in_flight[packet.packet_id]


class Subscriber:
    """A persistent subscriber that counts deliveries and drops offline.

    QoS 2 packet ids stay in ``awaiting_pubrel`` from PUBLISH to PUBREL, so a
    resent PUBLISH is acknowledged again but not counted again.  A PUBLISH
    that reuses such a packet id for another message is lost, as it would be
    for any client; ``reused_ids`` records it.
    """

    def __init__(self, broker: Broker, seed: int) -> None:
        self.broker = broker
        self.random = random.Random(seed)
        self.deliveries: collections.Counter[int] = collections.Counter()
        self.other: list[Publish] = []
        #: QoS 2 packet id to the payload it arrived with.
        self.awaiting_pubrel: dict[int, bytes] = {}
        self.reused_ids: list[tuple[int, bytes, bytes]] = []
        #: Number to the (packet id, DUP) of each counted QoS 2 delivery.
        self.qos2_arrivals: dict[int, list[tuple[int, bool]]] = {}
        self.connects: list[bool] = []
        self.offline_periods = 0
        self.stay_online = threading.Event()
        self.stop = threading.Event()

    def subscribe_first(self) -> None:
        """Connect once, subscribe to both filters and go offline again."""
        connected = connect(self.broker, "crash-subscriber", self.stop)
        assert connected is not None
        client = connected[0]
        client.send(
            Subscribe(
                1,
                [Subscription("crash/#", qos=2)],
                properties={PropertyId.SUBSCRIPTION_IDENTIFIER: [3]},
            )
        )
        client.send(
            Subscribe(
                2,
                [Subscription("other/+", qos=1, no_local=True)],
                properties={PropertyId.SUBSCRIPTION_IDENTIFIER: [7]},
            )
        )
        for _ in range(2):
            suback = client.receive()
            assert isinstance(suback, Suback)
            assert suback.reason_codes[0] < 0x80
        client.send(Disconnect())
        client.close()

    def run(self) -> None:
        while not self.stop.is_set():
            connected = connect(self.broker, "crash-subscriber", self.stop)
            if connected is None:
                return
            client, session_present = connected
            self.connects.append(session_present)
            online_until = time.monotonic() + self.random.uniform(0.3, 1.2)
            try:
                while not self.stop.is_set():
                    if (
                        time.monotonic() > online_until
                        and not self.stay_online.is_set()
                    ):
                        client.send(Disconnect())
                        self.offline_periods += 1
                        time.sleep(self.random.uniform(0.1, 0.6))
                        break
                    packet = receive(client, 0.05)
                    if packet is not None:
                        self._handle(client, packet)
            except (OSError, ConnectionClosedError):
                pass
            finally:
                client.close()

    def _handle(self, client: RawClient, packet: Any) -> None:
        if isinstance(packet, Pubrel):
            self.awaiting_pubrel.pop(packet.packet_id, None)
            client.send(Pubcomp(packet.packet_id))
            return
        if not isinstance(packet, Publish):
            return
        earlier = None
        if packet.qos == 2:
            earlier = self.awaiting_pubrel.get(packet.packet_id)
        if packet.topic.startswith("other/"):
            self.other.append(packet)
        elif earlier is None:
            number = int(packet.payload)
            self.deliveries[number] += 1
            if packet.qos == 2:
                arrivals = self.qos2_arrivals.setdefault(number, [])
                arrivals.append((packet.packet_id, packet.dup))
        elif earlier != packet.payload:
            self.reused_ids.append((packet.packet_id, earlier, packet.payload))
        if packet.qos == 1:
            client.send(Puback(packet.packet_id))
        elif packet.qos == 2:
            self.awaiting_pubrel.setdefault(packet.packet_id, packet.payload)
            client.send(Pubrec(packet.packet_id))


def in_thread(
    target: Callable[[], None], errors: list[BaseException]
) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_until(
    condition: Callable[[], Any], what: Callable[[], str] | str, broker: Broker
) -> None:
    """Poll ``condition`` until it is true; fail with ``what`` and the logs."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"timed out waiting for {detail}\n{broker.all_logs()}")
        time.sleep(0.05)


def publish_retained(broker: Broker) -> None:
    assert broker.port is not None
    with RawClient(broker.port) as client:
        client.connect("crash-retainer")
        for packet_id, (topic, payload) in enumerate(RETAINED.items(), 1):
            client.send(
                Publish(topic, payload, qos=1, retain=True, packet_id=packet_id)
            )
            assert isinstance(client.receive(), Puback)
        # An empty payload clears: this one must not come back.
        client.send(Publish("retained/c", b"", qos=1, retain=True, packet_id=9))
        assert isinstance(client.receive(), Puback)
        client.send(Disconnect())


def read_retained(broker: Broker) -> dict[str, bytes]:
    assert broker.port is not None
    found = {}
    with RawClient(broker.port) as client:
        client.connect("crash-reader")
        client.send(Subscribe(1, [Subscription("retained/#", qos=0)]))
        assert isinstance(client.receive(), Suback)
        while True:
            try:
                packet = client.receive(timeout=1.0)
            except TimeoutError:
                break
            if isinstance(packet, Publish):
                found[packet.topic] = packet.payload
        client.send(Disconnect())
    return found


def publish_other(broker: Broker) -> None:
    assert broker.port is not None
    with RawClient(broker.port) as client:
        client.connect("crash-other")
        client.send(Publish("other/x", b"after the crashes", qos=1, packet_id=1))
        assert isinstance(client.receive(), Puback)
        client.send(Disconnect())


def test_sigkill_keeps_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    runs = tmp_path / "runs"
    runs.mkdir()
    broker = Broker(tmp_path / "data", runs)
    broker.start()
    publisher = Publisher(broker)
    subscriber = Subscriber(broker, rng.randrange(2**32))
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []
    try:
        publish_retained(broker)
        subscriber.subscribe_first()
        threads.append(in_thread(publisher.run, errors))
        threads.append(in_thread(subscriber.run, errors))
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.4, 1.5))
            broker.kill()
            time.sleep(rng.uniform(0.0, 0.2))
            broker.start()
        time.sleep(0.5)
        publisher.finish.set()
        subscriber.stay_online.set()
        wait_until(
            publisher.done.is_set, "the publisher's last acknowledgements", broker
        )
        wait_until(
            lambda: set(subscriber.deliveries) >= publisher.acknowledged,
            lambda: (
                "acknowledged messages still missing at the subscriber: "
                f"{sorted(publisher.acknowledged - set(subscriber.deliveries))[:50]}; "
                f"packet ids reused before PUBREL: {subscriber.reused_ids[:20]}; "
                f"waiting for PUBREL: {sorted(subscriber.awaiting_pubrel)[:50]}"
            ),
            broker,
        )
        publish_other(broker)
        wait_until(lambda: bool(subscriber.other), "the message to other/x", broker)
        retained = read_retained(broker)
    finally:
        publisher.stop.set()
        subscriber.stop.set()
        for thread in threads:
            thread.join(5)
        status = broker.stop()
    logs = broker.all_logs()

    assert errors == [], logs
    # twistd ends with the signal that stopped it, after a clean shutdown.
    assert status == -signal.SIGTERM, logs
    acknowledged = publisher.acknowledged
    qos1 = {number for number in acknowledged if number % 2}
    qos2 = acknowledged - qos1
    deliveries = subscriber.deliveries
    assert len(acknowledged) > 500
    assert subscriber.offline_periods > 0
    assert publisher.rejected == []
    assert publisher.sessions_lost == 0, logs
    assert all(subscriber.connects), subscriber.connects
    assert subscriber.reused_ids == [], logs
    assert [number for number in qos1 if deliveries[number] < 1] == [], logs
    assert [number for number in qos2 if deliveries[number] < 1] == [], logs
    assert retained == {"retained/a": b"alpha", "retained/b": b"beta"}
    other = subscriber.other[0]
    assert other.payload == b"after the crashes"
    assert other.properties.get(PropertyId.SUBSCRIPTION_IDENTIFIER) == [7]
    check_qos2_once(subscriber.qos2_arrivals)


def check_qos2_once(arrivals: dict[int, list[tuple[int, bool]]]) -> None:
    """Fail unless every QoS 2 message arrived once.

    Each arrival is (packet id, DUP).
    """
    twice = {number: seen for number, seen in arrivals.items() if len(seen) > 1}
    assert twice == {}
