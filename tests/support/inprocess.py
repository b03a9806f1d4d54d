"""Run a Broker inside the test process, on a loopback port, under pytest-twisted.

``start_broker`` builds a :class:`~mqttauth.broker.broker.Broker` with the
given parts (by default: every client allowed, every request allowed, an
in-memory store), starts it and listens on 127.0.0.1 port 0.  The returned
:class:`RunningBroker` has the port and a ``stop()`` that returns a Deferred.
Blocking client code (paho-mqtt, :mod:`tests.support.rawclient`) must run in
a thread, for example with :func:`in_thread`, so the reactor keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet import threads
from twisted.internet.defer import Deferred
from zope.interface import implementer

from mqttauth.auth.interfaces import (
    AuthRequest,
    AuthSuccess,
    IAuthenticator,
    IAuthorizer,
    Identity,
)
from mqttauth.broker.broker import Broker
from mqttauth.broker.settings import BrokerSettings
from mqttauth.store.interfaces import ISessionStore
from mqttauth.store.memory import MemoryStore

T = TypeVar("T")


@implementer(IAuthenticator)
class AcceptAllAuthenticator:
    """Accept every client; the principal is the User Name, else the client id."""

    methods: tuple[str, ...] = ()

    def authenticate(self, request: AuthRequest) -> AuthSuccess:
        principal = request.username or request.client_id
        return AuthSuccess(Identity(principal=principal, client_id=request.client_id))


@implementer(IAuthorizer)
class AllowAllAuthorizer:
    """Allow every publish and subscribe."""

    def authorize_publish(
        self, identity: Identity, topic: str, qos: int, retain: bool
    ) -> bool:
        return True

    def authorize_subscribe(
        self, identity: Identity, topic_filter: str, qos: int
    ) -> bool:
        return True


class RunningBroker:
    """A started broker and the loopback port it listens on."""

    def __init__(self, broker: Broker, listening_port: Any) -> None:
        self.broker = broker
        self.listening_port = listening_port
        self.port: int = listening_port.getHost().port
        self.host = "127.0.0.1"

    def stop(self) -> Deferred[None]:
        """Stop listening, then stop the broker (its Deferred fires when done)."""
        stopped = self.listening_port.stopListening()
        if stopped is None:
            return self.broker.stop()
        return stopped.addCallback(lambda _: self.broker.stop())


def start_broker(
    reactor: Any = None,
    settings: BrokerSettings | None = None,
    authenticator: IAuthenticator | None = None,
    authorizers: Sequence[IAuthorizer] | None = None,
    store: ISessionStore | None = None,
) -> RunningBroker:
    """Start a broker on 127.0.0.1, port 0, in this process."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    broker = Broker(
        reactor,
        settings or BrokerSettings(),
        authenticator or AcceptAllAuthenticator(),
        list(authorizers) if authorizers is not None else [AllowAllAuthorizer()],
        store or MemoryStore(),
    )
    broker.start()
    listening_port = reactor.listenTCP(0, broker.build_factory(), interface="127.0.0.1")
    return RunningBroker(broker, listening_port)


def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
    """Run blocking ``function`` in the reactor's thread pool; fire with its result."""
    return threads.deferToThread(function, *args, **kwargs)
