"""Session state: subscriptions and the outgoing QoS 1 and 2 message flow.

A session lives as long as its Session Expiry Interval allows, across
connections.  It keeps the messages that wait for a packet identifier in a
FIFO queue, and those sent but not yet acknowledged in ``inflight``, keyed by
packet identifier.  Both follow the order of arrival, so the order per topic
is kept (MQTT-4.6.0).  At most ``window`` messages are in flight: the
client's Receive Maximum capped by the broker's ``max_inflight``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from mqttauth.store.records import QUEUED, RELEASED, SENT

from .message import Message
from .topictree import Subscription

if TYPE_CHECKING:
    from mqttauth.auth.interfaces import Identity

    from .broker import Broker

log = Logger(namespace="mqttauth.broker.session")

#: Session Expiry Interval that means the session never expires.
NEVER_EXPIRES = 0xFFFFFFFF


class Outgoing:
    """One message on its way to one session, at the QoS granted to it."""

    __slots__ = (
        "key",
        "message",
        "qos",
        "retain",
        "subscription_identifiers",
        "packet_id",
        "state",
        "hold",
    )

    def __init__(
        self,
        key: int,
        message: Message,
        qos: int,
        retain: bool,
        subscription_identifiers: tuple[int, ...],
    ) -> None:
        self.key = key
        self.message = message
        self.qos = qos
        self.retain = retain
        self.subscription_identifiers = subscription_identifiers
        self.packet_id: int | None = None
        self.state = QUEUED
        #: Journal commit sequence number this message waits for, 0 for none.
        self.hold = 0


class Session:
    """The state of one client id that outlives (or lives with) a connection."""

    __slots__ = (
        "broker",
        "client_id",
        "protocol_level",
        "expiry_interval",
        "subscriptions",
        "connection",
        "identity",
        "inflight",
        "resend",
        "resuming",
        "queue",
        "inbound",
        "next_packet_id",
        "next_key",
        "expiry_call",
        "disconnected_at",
        "dropped",
        "journaled",
    )

    def __init__(
        self, broker: Broker, client_id: str, protocol_level: int, expiry_interval: int
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.protocol_level = protocol_level
        self.expiry_interval = expiry_interval
        self.subscriptions: dict[str, Subscription] = {}
        #: The protocol of the live connection, or None while disconnected.
        self.connection: Any = None
        self.identity: Identity | None = None
        # Created on first use: most sessions never need them.
        self.inflight: dict[int, Outgoing] | None = None
        #: Messages in flight from an earlier connection that wait, in order,
        #: for the client's Receive Maximum to allow sending them again.
        self.resend: deque[Outgoing] | None = None
        #: Whether a resumed connection waits for the commit before which
        #: nothing may be sent to it (durable store only).
        self.resuming = False
        self.queue: deque[Outgoing] | None = None
        #: Inbound QoS 2 packet ids that wait for PUBREL (MQTT-4.3.3-9).
        self.inbound: set[int] | None = None
        self.next_packet_id = 1
        self.next_key = 1
        self.expiry_call: Any = None
        self.disconnected_at: float | None = None
        self.dropped = 0
        #: Whether the journal contains this session.
        self.journaled = False

    @property
    def persistent(self) -> bool:
        """Whether the session outlives its connection (and so is journaled)."""
        return self.expiry_interval > 0

    # -- delivery ----------------------------------------------------------

    def deliver(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_identifiers: tuple[int, ...],
    ) -> None:
        """Send or queue ``message`` at ``qos`` for this session.

        QoS 0 goes out at once to a connected client and is dropped for a
        disconnected one.  QoS 1 and 2 messages are journaled when the
        session is persistent, and with a durable store they wait for the
        journal commit of the message and its packet id before they are
        sent.  So a crash cannot lose a message whose PUBLISH a client
        acknowledged, nor send a QoS 2 message again under a new packet id.
        """
        connection = self.connection
        if not qos:
            if connection is not None:
                connection.send_publish(
                    message, 0, retain, subscription_identifiers, None, False
                )
            return
        queue = self.queue
        if queue is not None and len(queue) >= self.broker.settings.max_queued_messages:
            self._drop(message)
            return
        outgoing = Outgoing(
            self.next_key, message, qos, retain, subscription_identifiers
        )
        self.next_key += 1
        journal = self.broker.journal
        if self.journaled and journal.durable:
            if (
                connection is not None
                and not self.resuming
                and not queue
                and self._in_flight() < connection.window
            ):
                # One commit records the message and its packet id.
                if self._assign(outgoing):
                    journal.after_commit(self._write_assigned, connection, [outgoing])
                return
            outgoing.hold = journal.hold(self)
        elif (
            connection is not None
            and not queue
            and self._in_flight() < connection.window
        ):
            self._send(outgoing, connection)
            return
        if self.journaled:
            journal.put_message(self.client_id, outgoing)
        if queue is None:
            queue = self.queue = deque()
        queue.append(outgoing)

    def _drop(self, message: Message) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warn(
                "Queue of {client_id} is full ({limit} messages): dropped the new "
                "message to {topic}, {dropped} dropped so far",
                client_id=self.client_id,
                limit=self.broker.settings.max_queued_messages,
                topic=message.topic,
                dropped=self.dropped,
            )

    def _in_flight(self) -> int:
        inflight = self.inflight
        return len(inflight) if inflight is not None else 0

    def _allocate_packet_id(self) -> int:
        inflight = self.inflight
        if inflight is None:
            inflight = self.inflight = {}
        packet_id = self.next_packet_id
        while packet_id in inflight:
            packet_id = packet_id + 1 if packet_id < 0xFFFF else 1
        self.next_packet_id = packet_id + 1 if packet_id < 0xFFFF else 1
        return packet_id

    def _send(self, outgoing: Outgoing, connection: Any) -> None:
        """Give ``outgoing`` a packet id and send it at once."""
        if self._assign(outgoing):
            self._write_assigned(connection, [outgoing])

    def _assign(self, outgoing: Outgoing) -> bool:
        """Give ``outgoing`` a packet id and journal it as sent, before it is.

        Returns False for a message that expired, which is forgotten.
        """
        message = outgoing.message
        # NOTE: later messages do not wait for the commit that deletes an
        # expired or too-large one, so a kill in between restores it behind
        # them: out of order, though not lost or duplicated.
        if message.expires_at is not None:
            if message.expires_at <= self.broker.reactor.seconds():
                self._forget(outgoing)
                return False
        packet_id = self._allocate_packet_id()
        outgoing.packet_id = packet_id
        outgoing.state = SENT
        self.inflight[packet_id] = outgoing  # type: ignore[index]
        if self.journaled:
            self.broker.journal.put_message(self.client_id, outgoing)
        return True

    def _write_assigned(self, connection: Any, assigned: list[Outgoing]) -> None:
        """Send messages that :meth:`_assign` gave packet ids, in order.

        With a durable store this runs once the packet ids are committed.

        A connection that ended meanwhile gets nothing: the messages stay in
        flight and go out again, with DUP, when the session resumes.
        """
        if self.connection is not connection:
            return
        inflight = self.inflight
        dropped = False
        for outgoing in assigned:
            packet_id = outgoing.packet_id
            if inflight is None or packet_id is None:
                return
            if inflight.get(packet_id) is not outgoing:
                # Acknowledged or ended in the meantime.
                continue
            sent = _write_publish(connection, outgoing, False)
            if not sent:
                # Too large for the client: the server behaves as if it had
                # completed the delivery (MQTT-3.1.2-25).
                del inflight[packet_id]
                self._forget(outgoing)
                dropped = True
            if self.connection is not connection:
                return
        if dropped:
            # No acknowledgement will come for the dropped messages, so fill
            # their places in the window from the queue now.
            self.pump()

    def _forget(self, outgoing: Outgoing) -> None:
        if self.journaled:
            self.broker.journal.delete_message(self.client_id, outgoing.key)

    def pump(self) -> None:
        """Send queued messages while the window and the journal allow.

        Messages waiting to be sent again after a reconnect go first.
        """
        connection = self.connection
        if connection is None or self.resuming:
            return
        if self.resend:
            self._resend_waiting(connection)
            if self.connection is not connection:
                return
        queue = self.queue
        if not queue:
            return
        journal = self.broker.journal
        committed = journal.committed
        window = connection.window
        if self.journaled and journal.durable:
            # The PUBLISH goes out only once its packet id is committed.  A
            # crash before that commit would bring the message back as
            # queued, to be sent again under a new packet id: a second copy
            # of a QoS 2 message.
            assigned = []
            while queue and self._in_flight() < window:
                outgoing = queue[0]
                if outgoing.hold > committed:
                    break
                queue.popleft()
                if self._assign(outgoing):
                    assigned.append(outgoing)
            if assigned:
                journal.after_commit(self._write_assigned, connection, assigned)
            return
        while queue and self._in_flight() < window:
            outgoing = queue[0]
            if outgoing.hold > committed:
                break
            queue.popleft()
            self._send(outgoing, connection)
            if self.connection is not connection:
                break

    def _resend_waiting(self, connection: Any) -> None:
        """Send ``resend`` PUBLISH (with DUP) and PUBREL packets again, in order.

        The messages still waiting count as in flight, because their packet
        ids stay in use, but only those sent on this connection count
        against the client's Receive Maximum (MQTT-3.3.4-9).
        """
        resend = self.resend
        inflight = self.inflight
        window = connection.window
        while resend and len(inflight) - len(resend) < window:  # type: ignore[arg-type]
            outgoing = resend.popleft()
            if outgoing.state == RELEASED:
                connection.send_pubrel(outgoing.packet_id)
                continue
            sent = _write_publish(connection, outgoing, True)
            if not sent and outgoing.qos == 2:
                self._release_unsendable(outgoing, connection)
            elif not sent:
                # Too large for the client's Maximum Packet Size on this
                # connection: behave as if the delivery had completed
                # (MQTT-3.1.2-25), so it does not hold a place in the window.
                del inflight[outgoing.packet_id]  # type: ignore[arg-type, union-attr]
                self._forget(outgoing)
            if self.connection is not connection:
                return

    def _release_unsendable(self, outgoing: Outgoing, connection: Any) -> None:
        """Complete a QoS 2 delivery whose resent PUBLISH is too large to send.

        The client may have received the PUBLISH on an earlier connection and
        still wait for PUBREL.  Until then it takes any PUBLISH with that
        packet id for the same message (MQTT 5.0 section 4.3.3), so the id
        must not go to another message yet.  A PUBREL ends the exchange
        either way, because a client that never had the message also replies
        with PUBCOMP.  As after a PUBREC, the PUBREL waits for the commit
        of the released state.
        """
        outgoing.state = RELEASED
        journal = self.broker.journal
        if self.journaled:
            journal.put_message(self.client_id, outgoing)
        journal.after_commit(connection.send_pubrel, outgoing.packet_id)

    def _stop_resending(self, outgoing: Outgoing) -> None:
        """Take ``outgoing`` off ``resend``, since the client acknowledged it."""
        resend = self.resend
        if resend and outgoing in resend:
            resend.remove(outgoing)

    def resume(self) -> None:
        """Resend what was in flight, with DUP, then go on with the queue.

        Called after CONNACK on a resumed session (MQTT-4.4.0-1): a PUBLISH
        that was not acknowledged is sent again with DUP set and its packet
        id, and a PUBREL that was not completed is sent again.  They go out
        in their original order as soon as the Receive Maximum of the new
        connection allows, before any queued message.

        With a durable store, nothing goes out before the next commit, so a
        packet id or a PUBREC that the client sees again is one that a
        restart would restore.
        """
        journal = self.broker.journal
        if self.journaled and journal.durable:
            # Until that commit no message gets a packet id either, because
            # _resume_on resends everything in flight and a message assigned
            # in between would go out twice.
            self.resuming = True
            journal.after_commit(self._resume_on, self.connection)
            return
        self._resume_on(self.connection)

    def _resume_on(self, connection: Any) -> None:
        if self.connection is not connection:
            return
        self.resuming = False
        inflight = self.inflight
        self.resend = None
        if inflight:
            # PUBLISH and PUBREL packets go out again in their original order.
            self.resend = deque(sorted(inflight.values(), key=_by_key))
        self.pump()

    # -- acknowledgements from the client ------------------------------------

    def on_puback(self, packet_id: int) -> bool:
        """Complete a QoS 1 delivery; return whether the packet id was in use."""
        inflight = self.inflight
        outgoing = inflight.get(packet_id) if inflight else None
        if outgoing is None or outgoing.qos != 1:
            return False
        del inflight[packet_id]  # type: ignore[union-attr]
        self._stop_resending(outgoing)
        self._forget(outgoing)
        self.pump()
        return True

    def on_pubrec(self, packet_id: int, reason_code: int) -> bool:
        """Move a QoS 2 delivery to released; return whether it was in flight.

        A PUBREC with a reason code of 0x80 or above ends the flow: the
        message is forgotten and no PUBREL follows (MQTT-4.3.3).
        """
        inflight = self.inflight
        outgoing = inflight.get(packet_id) if inflight else None
        if outgoing is None or outgoing.qos != 2:
            return False
        self._stop_resending(outgoing)
        if reason_code >= 0x80:
            del inflight[packet_id]  # type: ignore[union-attr]
            self._forget(outgoing)
            self.pump()
            return True
        if outgoing.state != RELEASED:
            outgoing.state = RELEASED
            if self.journaled:
                self.broker.journal.put_message(self.client_id, outgoing)
        return True

    def on_pubcomp(self, packet_id: int) -> bool:
        """Complete a QoS 2 delivery; return whether it was released."""
        inflight = self.inflight
        outgoing = inflight.get(packet_id) if inflight else None
        if outgoing is None or outgoing.state != RELEASED:
            return False
        del inflight[packet_id]  # type: ignore[union-attr]
        self._stop_resending(outgoing)
        self._forget(outgoing)
        self.pump()
        return True

    # -- inbound QoS 2 ----------------------------------------------------------

    def has_inbound(self, packet_id: int) -> bool:
        inbound = self.inbound
        return inbound is not None and packet_id in inbound

    def add_inbound(self, packet_id: int) -> None:
        inbound = self.inbound
        if inbound is None:
            inbound = self.inbound = set()
        inbound.add(packet_id)
        if self.journaled:
            self.broker.journal.put_inbound(self.client_id, packet_id)

    def release_inbound(self, packet_id: int) -> bool:
        """Forget an inbound QoS 2 packet id; return whether it was known."""
        inbound = self.inbound
        if inbound is None or packet_id not in inbound:
            return False
        inbound.discard(packet_id)
        if self.journaled:
            self.broker.journal.delete_inbound(self.client_id, packet_id)
        return True

    def outgoing_messages(self) -> list[Outgoing]:
        """Return every message in flight or queued, in order of arrival."""
        messages = sorted(self.inflight.values(), key=_by_key) if self.inflight else []
        if self.queue:
            messages.extend(self.queue)
        return messages


def _write_publish(connection: Any, outgoing: Outgoing, dup: bool) -> bool:
    """Send ``outgoing`` under its packet id; return False if it is too large."""
    return bool(
        connection.send_publish(
            outgoing.message,
            outgoing.qos,
            outgoing.retain,
            outgoing.subscription_identifiers,
            outgoing.packet_id,
            dup,
        )
    )


def _by_key(outgoing: Outgoing) -> int:
    return outgoing.key
