"""A broker driven by a task.Clock, with in-memory transports, for timer tests.

Only time is faked: the broker, its protocols and the codec are the real
ones; the transport is Twisted's StringTransport.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from mqttauth.broker.broker import Broker
from mqttauth.broker.settings import BrokerSettings
from mqttauth.mqtt.codec import Decoder, encode
from mqttauth.mqtt.constants import MQTT_5_0
from mqttauth.mqtt.packets import Connack, Connect, Packet
from mqttauth.store.memory import MemoryStore
from tests.support.inprocess import AcceptAllAuthenticator, AllowAllAuthorizer

#: The clock starts at a realistic POSIX time, so expiry times look real.
START = 1_700_000_000.0


def clocked_broker(
    settings: BrokerSettings | None = None,
    authenticator: Any = None,
    authorizers: Any = None,
    store: Any = None,
    clock: Clock | None = None,
) -> Broker:
    """Return a started broker whose reactor is a Clock at :data:`START`."""
    if clock is None:
        clock = Clock()
        clock.advance(START)
    broker = Broker(
        clock,
        settings or BrokerSettings(),
        authenticator or AcceptAllAuthenticator(),
        authorizers if authorizers is not None else [AllowAllAuthorizer()],
        store or MemoryStore(),
    )
    broker.start()
    return broker


class FakeClient:
    """One connection to a clocked broker over a StringTransport."""

    def __init__(
        self,
        broker: Broker,
        protocol_level: int = MQTT_5_0,
        transport: StringTransport | None = None,
    ) -> None:
        self.broker = broker
        self.protocol_level = protocol_level
        self.protocol = broker.build_factory().buildProtocol(None)
        if transport is None:
            transport = StringTransport()
        transport.peerAddress = IPv4Address("TCP", "127.0.0.1", 50000)
        self.transport = transport
        self.protocol.makeConnection(self.transport)
        self.decoder = Decoder(protocol_level=protocol_level)
        #: Packets that arrived with the CONNACK, returned by the next received().
        self._early: list[Packet] = []

    def send(self, packet: Packet) -> None:
        self.protocol.dataReceived(encode(packet, self.protocol_level))

    def received(self) -> list[Packet]:
        """Return the packets the broker sent since the last call."""
        data = self.transport.value()
        self.transport.clear()
        self.decoder.feed(data)
        packets, self._early = self._early, []
        while (packet := self.decoder.next_packet()) is not None:
            packets.append(packet)
        return packets

    def connect(self, client_id: str = "c", **fields: Any) -> Connack:
        self.send(Connect(client_id, protocol_level=self.protocol_level, **fields))
        packets = self.received()
        assert packets, "no CONNACK"
        connack = packets[0]
        assert isinstance(connack, Connack)
        self._early = packets[1:]
        return connack

    @property
    def closing(self) -> bool:
        """Whether the broker asked the transport to close."""
        return bool(self.transport.disconnecting)

    def lose(self) -> None:
        """Drop the connection as a network failure would."""
        self.protocol.connectionLost(None)
