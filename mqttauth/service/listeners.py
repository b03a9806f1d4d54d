"""Listeners: endpoint strings turned into services that accept MQTT connections."""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from .config import ConfigError
from .tls import TLSPolicy, build_tls_endpoint, is_tls_description

log = Logger()


@dataclass(frozen=True, slots=True)
class Listener:
    """One ``--listen`` endpoint, parsed."""

    description: str
    endpoint: IStreamServerEndpoint
    tls: bool


def parse_listeners(
    reactor: Any, descriptions: Sequence[str], policy: TLSPolicy
) -> list[Listener]:
    """Parse every ``--listen`` string; the first bad one raises ConfigError."""
    listeners = []
    for description in descriptions:
        if is_tls_description(description):
            endpoint = build_tls_endpoint(reactor, description, policy)
            listeners.append(Listener(description, endpoint, tls=True))
            continue
        try:
            endpoint = serverFromString(reactor, description)
        except (ValueError, TypeError, KeyError, IndexError) as error:
            raise ConfigError(
                "--listen",
                f"invalid endpoint {description!r} ({error}); use a Twisted endpoint "
                "string such as tcp:1883, tcp:1883:interface=127.0.0.1 or "
                "ssl:8883:privateKey=server.key:certKey=server.pem",
            ) from None
        listeners.append(Listener(description, endpoint, tls=False))
    return listeners


def format_address(address: Any) -> str:
    """Return ``host:port`` (``[host]:port`` for IPv6) or the address's text."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        name = getattr(address, "name", None)
        return str(name if name is not None else address)
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _listen_hint(error: BaseException) -> str:
    """Return what an operator can do about a failure to listen."""
    cause = getattr(error, "socketError", error)
    number = getattr(cause, "errno", None)
    if number == errno.EADDRINUSE:
        return "stop the process that uses the port or choose another port"
    if number == errno.EACCES:
        return (
            "ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port "
            "above 1023 or grant the capability"
        )
    if number == errno.EADDRNOTAVAIL:
        return "give an interface address that this machine has"
    return "correct the --listen endpoint"


class ListenError(Exception):
    """A listener could not start; the message names the endpoint and the cause."""


class ListenerService(Service):
    """Accept connections on one endpoint with a factory from the broker.

    The port is opened in ``privilegedStartService``, so that twistd opens it
    before it drops privileges.  A failure that the endpoint reports at once
    (a port in use, a permission error) raises :class:`ListenError`; one it
    reports later is logged and handed to ``on_failure``.
    """

    def __init__(
        self,
        listener: Listener,
        factory: Factory,
        on_failure: Callable[[ListenError], None],
    ) -> None:
        self.listener = listener
        self.factory = factory
        self.port: IListeningPort | None = None
        self._on_failure = on_failure
        self._listening: Deferred[IListeningPort] | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        failures: list[ListenError] = []
        starting = True

        def failed(failure: Failure) -> None:
            error = self._failed(failure)
            if starting:
                failures.append(error)
            else:
                log.critical("{error}", error=str(error))
                self._on_failure(error)

        self._listening = self.listener.endpoint.listen(self.factory)
        self._listening.addCallbacks(self._listened, failed)
        starting = False
        if failures:
            raise failures[0]

    def startService(self) -> None:
        if self._listening is None:
            self.privilegedStartService()
        super().startService()

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        log.info(
            "Listening on {endpoint} at {address} ({transport})",
            endpoint=self.listener.description,
            address=format_address(port.getHost()),
            transport="TLS" if self.listener.tls else "plain",
        )
        return port

    def _failed(self, failure: Failure) -> ListenError:
        reason = failure.getErrorMessage().rstrip(".")
        return ListenError(
            f"cannot listen on {self.listener.description!r}: {reason}; "
            f"{_listen_hint(failure.value)}"
        )

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self.port is None:
            if self._listening is not None:
                self._listening.cancel()
            return None
        port, self.port = self.port, None
        return port.stopListening()
