"""The broker: sessions by client id, routing, retained messages, start and stop.

The :class:`Broker` owns the state that spans connections: the sessions, the
subscription tree, the retained messages, the pending wills and the journal.
Each listener gets its protocols from :meth:`Broker.build_factory`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from mqttauth.auth.interfaces import IAuthenticator, IAuthorizer
from mqttauth.mqtt.constants import ReasonCode
from mqttauth.store.interfaces import ISessionStore

from . import restore
from .authz import AuthorizerChain, when_decided
from .journal import Journal
from .loglimit import LogLimit
from .message import Message
from .protocol import CONNECTED, MQTTServerProtocol
from .retained import RetainedMessages
from .session import NEVER_EXPIRES, Session
from .settings import BrokerSettings
from .topictree import Subscription, SubscriptionTree
from .wills import Wills

log = Logger(namespace="mqttauth.broker")

#: Seconds between two checks of Keep Alive and connect timeouts.
SWEEP_INTERVAL = 0.5
#: Seconds :meth:`Broker.stop` waits for connections to close before it aborts them.
STOP_TIMEOUT = 5.0


class Broker:
    """An MQTT 3.1.1 and 5.0 broker, independent of how it listens."""

    def __init__(
        self,
        reactor: Any,
        settings: BrokerSettings,
        authenticator: IAuthenticator,
        authorizers: Sequence[IAuthorizer],
        store: ISessionStore,
    ) -> None:
        self.reactor = reactor
        self.settings = settings
        self.authenticator = authenticator
        self.authorizers = AuthorizerChain(authorizers)
        #: How many times revalidate_subscriptions ran, so that a SUBSCRIBE
        #: decided after a reload can be checked again.
        self.revalidations = 0
        self.store: Any = store  # provides ISessionStore
        self.journal = Journal(store, reactor)
        self.tree = SubscriptionTree()
        self.retained = RetainedMessages()
        self.wills = Wills(self)
        self.sessions: dict[str, Session] = {}
        #: The live, connected protocol of each client id.
        self.connections: dict[str, MQTTServerProtocol] = {}
        #: Every open protocol, connected or not yet.
        self.protocols: set[MQTTServerProtocol] = set()
        #: Caps the log lines of refused CONNECTs, which any client can cause.
        self.refusal_log = LogLimit(reactor, "refused connections")
        self.handshake_log = LogLimit(reactor, "failed TLS handshakes")
        self._sweep = LoopingCall(self._check_timeouts)
        self._sweep.clock = reactor
        self.running = False

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Restore the journaled state and start the timers.

        Raises StoreError when the store cannot be read.
        """
        restore.restore(self, self.store.load())
        self.running = True
        self._sweep.start(SWEEP_INTERVAL, now=False)
        log.info(
            "Broker started: {sessions} sessions, {retained} retained messages, "
            "{wills} pending wills restored",
            sessions=len(self.sessions),
            retained=len(self.retained),
            wills=len(self.wills),
        )

    def stop(self) -> Deferred[None]:
        """Disconnect every client (5.0: DISCONNECT 0x8B), then close the store."""
        self.running = False
        if self._sweep.running:
            self._sweep.stop()
        waiting = []
        for protocol in list(self.protocols):
            lost: Deferred[None] = Deferred()
            if protocol.lost_waiters is None:
                protocol.lost_waiters = []
            protocol.lost_waiters.append(lost)
            waiting.append(lost)
            if protocol.state == CONNECTED:
                protocol.close(
                    ReasonCode.SERVER_SHUTTING_DOWN, None, "server shutting down"
                )
            else:
                protocol._end(publish_will=False, reason="server shutting down")
                protocol.transport.loseConnection()
        abort = self.reactor.callLater(STOP_TIMEOUT, self._abort_connections)
        closed = DeferredList(waiting) if waiting else succeed(None)

        def finish(_: object) -> Any:
            if abort.active():
                abort.cancel()
            self.wills.stop()
            for session in self.sessions.values():
                call, session.expiry_call = session.expiry_call, None
                if call is not None and call.active():
                    call.cancel()
            log.info("Broker stopped")
            return self.store.close()

        return closed.addCallback(finish)

    def _abort_connections(self) -> None:
        for protocol in list(self.protocols):
            if protocol.transport is not None:
                protocol.transport.abortConnection()

    def build_factory(self, tls: bool = False) -> Factory:
        """Return a server factory for one listener."""
        from .factory import MQTTServerFactory

        return MQTTServerFactory(self, tls)

    # -- connections -----------------------------------------------------------

    def protocol_opened(self, protocol: MQTTServerProtocol) -> None:
        self.protocols.add(protocol)

    def protocol_closed(self, protocol: MQTTServerProtocol) -> None:
        self.protocols.discard(protocol)

    def assign_client_id(self) -> str:
        """Return a new client id for a client that sent an empty one."""
        while True:
            client_id = f"auto-{uuid.uuid4().hex}"
            if client_id not in self.sessions:
                return client_id

    def open_session(
        self, protocol: MQTTServerProtocol, clean_start: bool, expiry_interval: int
    ) -> tuple[Session, bool]:
        """Attach an authenticated connection to its session.

        An existing connection with the same client id is ended first
        (MQTT-3.1.4-3); Clean Start discards the old session.  Returns the
        session and Session Present.
        """
        client_id = protocol.client_id
        old = self.connections.get(client_id)
        if old is not None and old is not protocol:
            old.close(ReasonCode.SESSION_TAKEN_OVER, None, "session taken over")
        session = self.sessions.get(client_id)
        if session is not None and clean_start:
            self.end_session(session)
            session = None
        present = session is not None
        if session is None:
            session = Session(self, client_id, protocol.protocol_level, expiry_interval)
            self.sessions[client_id] = session
        else:
            call, session.expiry_call = session.expiry_call, None
            if call is not None and call.active():
                call.cancel()
            self.wills.cancel(client_id)
        session.protocol_level = protocol.protocol_level
        session.expiry_interval = expiry_interval
        session.connection = protocol
        session.identity = protocol.identity
        session.disconnected_at = None
        protocol.session = session
        self.connections[client_id] = protocol
        if session.persistent:
            self.journal.put_session(session)
        elif session.journaled:
            self.journal.delete_session(client_id)
            session.journaled = False
        if present:
            self.revalidate_session(session)
        return session, present

    def connection_ended(
        self, protocol: MQTTServerProtocol, publish_will: bool
    ) -> None:
        """Detach a closed connection from its session and handle its will."""
        session = protocol.session
        if session is None:
            return
        protocol.session = None
        client_id = session.client_id
        if self.connections.get(client_id) is protocol:
            del self.connections[client_id]
        session.connection = None
        will = protocol.will if publish_will else None
        protocol.will = None
        identity = protocol.identity
        if session.expiry_interval == 0:
            self.end_session(session)
            if will is not None and identity is not None:
                self.wills.connection_ended(client_id, will, identity, 0)
            return
        session.disconnected_at = self.reactor.seconds()
        if session.journaled:
            self.journal.put_session(session)
        remaining = None
        if session.expiry_interval != NEVER_EXPIRES:
            remaining = session.expiry_interval
            session.expiry_call = self.reactor.callLater(
                remaining, self._session_expired, session
            )
        if will is not None and identity is not None:
            self.wills.connection_ended(client_id, will, identity, remaining)

    def change_session_expiry(self, session: Session, interval: int) -> None:
        """Apply the Session Expiry Interval of a DISCONNECT."""
        maximum = self.settings.max_session_expiry_interval
        if not (interval == NEVER_EXPIRES and maximum == NEVER_EXPIRES):
            interval = min(interval, maximum)
        session.expiry_interval = interval
        if session.persistent:
            self.journal.put_session(session)
        elif session.journaled:
            self.journal.delete_session(session.client_id)
            session.journaled = False

    def _session_expired(self, session: Session) -> None:
        session.expiry_call = None
        log.info("Session of {client_id} expired", client_id=session.client_id)
        self.end_session(session)

    def end_session(self, session: Session) -> None:
        """Discard a session: its subscriptions, messages and journal entries.

        A pending will goes out now, since its session has ended.
        """
        client_id = session.client_id
        if self.sessions.get(client_id) is session:
            del self.sessions[client_id]
        call, session.expiry_call = session.expiry_call, None
        if call is not None and call.active():
            call.cancel()
        for subscription in session.subscriptions.values():
            self.tree.remove(client_id, subscription)
        session.subscriptions = {}
        if session.journaled:
            self.journal.delete_session(client_id)
            session.journaled = False
        self.wills.flush(client_id)

    # -- subscriptions -----------------------------------------------------------

    def add_subscription(self, session: Session, subscription: Subscription) -> bool:
        """Insert or replace a subscription; return whether it replaced one."""
        old = session.subscriptions.get(subscription.topic_filter)
        if old is not None:
            self.tree.remove(session.client_id, old)
        session.subscriptions[subscription.topic_filter] = subscription
        self.tree.add(session.client_id, session, subscription)
        return old is not None

    def remove_subscription(self, session: Session, topic_filter: str) -> bool:
        """Delete a subscription; return whether it existed."""
        subscription = session.subscriptions.pop(topic_filter, None)
        if subscription is None:
            return False
        self.tree.remove(session.client_id, subscription)
        return True

    def revalidate_subscriptions(self) -> None:
        """Remove every live subscription that the authorizers now deny."""
        self.revalidations += 1
        for session in list(self.sessions.values()):
            self.revalidate_session(session)

    def revalidate_session(self, session: Session) -> None:
        """Remove the subscriptions of ``session`` that its identity may not hold.

        Called for every session after an ACL reload, and for one session
        after its client re-authenticated, since a new token may carry
        other groups or another organization.
        """
        identity = session.identity
        if identity is None:
            return
        for subscription in list(session.subscriptions.values()):
            decision = self.authorizers.subscribe(
                identity, subscription.match_filter, subscription.qos
            )
            when_decided(decision, self._revalidated, session, subscription)

    def _revalidated(
        self, allowed: bool, session: Session, subscription: Subscription
    ) -> None:
        if allowed:
            return
        if session.subscriptions.get(subscription.topic_filter) is not subscription:
            return
        self.remove_subscription(session, subscription.topic_filter)
        if session.journaled:
            self.journal.put_session(session)
        log.info(
            "Removed the subscription of {client_id} to {topic_filter}: no longer "
            "allowed",
            client_id=session.client_id,
            topic_filter=subscription.topic_filter,
        )

    # -- routing -----------------------------------------------------------------

    def publish(self, message: Message) -> bool:
        """Store a retained message and route ``message`` to its subscribers.

        Returns whether any subscription matched.  A retained message with
        an empty payload deletes the retained message of its topic and is
        still delivered to the current subscribers (MQTT-3.3.1-6, -10).
        """
        if message.retain:
            if message.payload:
                self.retained.set(message)
                self.journal.put_retained(message)
            elif self.retained.discard(message.topic):
                self.journal.delete_retained(message.topic)
        result = self.tree.match(message.topic)
        sender = message.sender
        qos = message.qos
        matched = False
        for delivery in result.deliveries:
            session = delivery.session
            if session.client_id == sender:
                delivery = delivery.local  # No Local (MQTT-3.8.3-3)
                if delivery is None:
                    continue
            granted = delivery.qos if delivery.qos < qos else qos
            session.deliver(
                message,
                granted,
                message.retain and delivery.retain_as_published,
                delivery.subscription_identifiers,
            )
            matched = True
        for group in result.groups:
            member = group.choose()
            if member is None:
                continue
            session, subscription = member
            granted = subscription.qos if subscription.qos < qos else qos
            identifier = subscription.subscription_identifier
            session.deliver(
                message,
                granted,
                message.retain and subscription.retain_as_published,
                (identifier,) if identifier is not None else (),
            )
            matched = True
        return matched

    # -- timers ------------------------------------------------------------------

    def _check_timeouts(self) -> None:
        now = self.reactor.seconds()
        connect_timeout = self.settings.connect_timeout
        expired = []
        for protocol in self.protocols:
            if protocol.state == CONNECTED:
                keep_alive = protocol.keep_alive
                if keep_alive and now - protocol.last_received >= keep_alive * 1.5:
                    expired.append((protocol, True))
            elif protocol.state < CONNECTED:
                if now - protocol.opened_at >= connect_timeout:
                    expired.append((protocol, False))
        for protocol, connected in expired:
            if connected:
                # MQTT-3.1.2-22: no packet within 1.5 times the Keep Alive.
                protocol.close(
                    ReasonCode.KEEP_ALIVE_TIMEOUT, None, "keep alive timeout"
                )
            else:
                log.info(
                    "Closed {peer}: no CONNECT within {timeout} seconds",
                    peer=protocol.peer,
                    timeout=connect_timeout,
                )
                protocol._end(publish_will=False, reason="connect timeout")
                protocol.transport.loseConnection()
