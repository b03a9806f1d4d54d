"""The Twisted server factory of one listener."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import Factory

from .protocol import MQTTServerProtocol

if TYPE_CHECKING:
    from .broker import Broker


class MQTTServerFactory(Factory):
    """Builds one :class:`MQTTServerProtocol` per accepted connection.

    ``tls`` records whether the listener wraps connections in TLS, so the
    peer certificate is offered to the authenticator.
    """

    noisy = False

    def __init__(self, broker: Broker, tls: bool = False) -> None:
        self.broker = broker
        self.tls = tls

    def buildProtocol(self, addr: Any) -> MQTTServerProtocol:
        protocol = MQTTServerProtocol(self.broker)
        protocol.factory = self
        return protocol
