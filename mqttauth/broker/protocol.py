"""The Twisted protocol of one client connection.

It turns bytes into packets with the codec, dispatches them by connection
state, and sends packets back within the limits the client announced.  The
CONNECT and AUTH exchanges live in :mod:`.authflow`, SUBSCRIBE and
UNSUBSCRIBE in :mod:`.subscriptions`, session state in :mod:`.session`.

The states, in order:

- ``AWAIT_CONNECT`` until the CONNECT arrives.
- ``CONNECTING`` while the CONNECT is authenticated.  Packets after the
  CONNECT stay in the decoder until CONNACK, except the AUTH packets of an
  enhanced authentication.
- ``CONNECTED`` after a successful CONNACK.
- ``CLOSED`` once the connection has ended.  Nothing more is read or sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from OpenSSL import SSL
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from mqttauth.mqtt.codec import Decoder, encode
from mqttauth.mqtt.constants import MQTT_5_0, PacketType, PropertyId, ReasonCode
from mqttauth.mqtt.errors import MQTTError, ProtocolError
from mqttauth.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)
from mqttauth.mqtt.reason_codes import REASON_CODES_5

from . import authflow, subscriptions
from .authz import when_decided
from .message import HOP_PROPERTIES, Message, with_packet_id
from .session import NEVER_EXPIRES

if TYPE_CHECKING:
    from mqttauth.auth.interfaces import Identity

    from .broker import Broker
    from .session import Session

log = Logger(namespace="mqttauth.broker.protocol")

AWAIT_CONNECT = 0
CONNECTING = 1
CONNECTED = 2
CLOSED = 3

#: Packet types that may carry a Reason String or User Property even when
#: the client set Request Problem Information to 0 (MQTT-3.1.2-29).
_PROBLEM_INFORMATION_ALWAYS = frozenset(
    {PacketType.CONNACK, PacketType.DISCONNECT, PacketType.PUBLISH}
)
_PINGRESP = encode(Pingresp(), MQTT_5_0)
#: Bytes a client may leave unread in its write buffer, once the transport
#: reports the buffer full, before QoS 0 messages to it are dropped.  QoS 1
#: and 2 messages are bounded by the in-flight window instead.
MAX_BACKLOG = 4 * 1024 * 1024
#: Bytes enough to read the protocol level of any CONNECT named "MQTT".
_HEAD_SIZE = 16
_TOPIC_ALIAS = PropertyId.TOPIC_ALIAS
_SUBSCRIPTION_IDENTIFIER = PropertyId.SUBSCRIPTION_IDENTIFIER
_MESSAGE_EXPIRY_INTERVAL = PropertyId.MESSAGE_EXPIRY_INTERVAL
_PAYLOAD_FORMAT_INDICATOR = PropertyId.PAYLOAD_FORMAT_INDICATOR


class MQTTServerProtocol(Protocol):
    """One client connection: moves bytes, runs timers, dispatches packets."""

    # A TCP or TLS transport; typed Any since mypy cannot check zope
    # interfaces such as ITransport.
    transport: Any

    __slots__ = (
        "broker",
        "decoder",
        "state",
        "session",
        "identity",
        "client_id",
        "protocol_level",
        "peer",
        "keep_alive",
        "last_received",
        "opened_at",
        "flow",
        "paused",
        "processing",
        "problem_information",
        "max_send_size",
        "window",
        "topic_alias_out_maximum",
        "aliases_in",
        "aliases_out",
        "pending_acks",
        "will",
        "auth_method",
        "credential_timer",
        "lost_waiters",
        "peer_certificate",
        "head",
        "backlog",
    )

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.decoder = Decoder(broker.settings.max_packet_size)
        self.state = AWAIT_CONNECT
        self.session: Session | None = None
        self.identity: Identity | None = None
        self.client_id = ""
        self.protocol_level = 0
        self.peer = ""
        #: Keep Alive in force, in seconds; 0 for none.
        self.keep_alive = 0
        self.last_received = 0.0
        self.opened_at = 0.0
        #: The CONNECT or re-authentication exchange in progress, if any.
        self.flow: Any = None
        self.paused = False
        self.processing = False
        self.problem_information = True
        #: The client's Maximum Packet Size: nothing larger is ever sent.
        self.max_send_size = 0xFFFFFFFF
        #: QoS 1 and 2 messages that may be in flight towards the client.
        self.window = broker.settings.max_inflight
        self.topic_alias_out_maximum = 0
        self.aliases_in: dict[int, str] | None = None
        self.aliases_out: dict[str, int] | None = None
        #: Inbound QoS 1 PUBLISH packets whose PUBACK waits for a commit.
        self.pending_acks = 0
        self.will: Will | None = None
        self.auth_method: str | None = None
        self.credential_timer: Any = None
        self.lost_waiters: list[Any] | None = None
        self.peer_certificate: Any = None
        #: The first bytes of the connection, kept until the CONNECT is
        #: decoded, so a malformed 5.0 CONNECT can still get a 5.0 CONNACK.
        self.head = b""
        #: Bytes written since the transport said its buffer is full, or -1
        #: while it is not full.  Past MAX_BACKLOG, QoS 0 messages are dropped.
        self.backlog = -1

    # -- Twisted callbacks -------------------------------------------------------

    def connectionMade(self) -> None:
        transport = self.transport
        try:
            transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        address = transport.getPeer()
        host = getattr(address, "host", None)
        self.peer = f"{host}:{address.port}" if host is not None else str(address)
        now = self.broker.reactor.seconds()
        self.opened_at = now
        self.last_received = now
        # As a producer, the protocol hears when the client reads too slowly.
        transport.registerProducer(self, True)
        self.broker.protocol_opened(self)

    def pauseProducing(self) -> None:  # noqa: N802 (IPushProducer)
        """Note that the transport's write buffer is full (IPushProducer)."""
        if self.backlog < 0:
            self.backlog = 0

    def resumeProducing(self) -> None:  # noqa: N802 (IPushProducer)
        """Note that the transport's write buffer has drained (IPushProducer)."""
        self.backlog = -1

    def stopProducing(self) -> None:  # noqa: N802 (IPushProducer)
        """Do nothing: connectionLost follows and ends the session (IPushProducer)."""

    def dataReceived(self, data: bytes) -> None:
        if self.state == CLOSED:
            return
        self.last_received = self.broker.reactor.seconds()
        if self.state == AWAIT_CONNECT and len(self.head) < _HEAD_SIZE:
            self.head += data[:_HEAD_SIZE]
        self.decoder.feed(data)
        if not self.paused and not self.processing:
            self.process()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if (
            self.state == AWAIT_CONNECT
            and reason is not None
            and reason.check(SSL.Error) is not None
            and self.broker.handshake_log.allow()
        ):
            log.info(
                "TLS handshake with {peer} failed: {error}",
                peer=self.peer,
                error=reason.getErrorMessage(),
            )
        if self.state != CLOSED:
            self._end(publish_will=True, reason="connection lost")
        self.broker.protocol_closed(self)
        waiters, self.lost_waiters = self.lost_waiters, None
        for waiter in waiters or ():
            waiter.callback(None)

    # -- reading -------------------------------------------------------------------

    def process(self) -> None:
        """Decode and handle the packets that are buffered, until paused."""
        self.processing = True
        decoder = self.decoder
        try:
            while not self.paused and self.state != CLOSED:
                packet = decoder.next_packet()
                if packet is None:
                    break
                _DISPATCH[type(packet)](self, packet)
        except MQTTError as error:
            self.protocol_violation(error)
        except Exception:
            log.failure(
                "Unexpected error handling a packet from {client_id} at {peer}",
                client_id=self.client_id,
                peer=self.peer,
            )
            self.close(ReasonCode.UNSPECIFIED_ERROR, None, "internal error")
        finally:
            self.processing = False

    def pause(self) -> None:
        """Stop handling packets until :meth:`resume` (they stay buffered)."""
        self.paused = True
        transport = self.transport
        if transport is not None:
            transport.pauseProducing()

    def resume(self) -> None:
        """Handle the buffered packets again, after :meth:`pause`."""
        if not self.paused:
            return
        self.paused = False
        if self.state == CLOSED:
            return
        self.transport.resumeProducing()
        if not self.processing:
            self.process()

    def protocol_violation(self, error: MQTTError) -> None:
        """Reject input that breaks the spec with the reason code the error names."""
        log.info(
            "Protocol violation by {client_id} at {peer}: {error} (reason code "
            "0x{reason_code:02X})",
            client_id=self.client_id,
            peer=self.peer,
            error=str(error),
            reason_code=int(error.reason_code),
        )
        if self.state == CONNECTED:
            self.close(error.reason_code, None, f"protocol violation: {error}")
        else:
            authflow.reject_before_connack(self, error)

    # -- packet handlers -----------------------------------------------------------

    def on_connect(self, packet: Connect) -> None:
        if self.state != AWAIT_CONNECT:
            # A second CONNECT is a Protocol Error (MQTT-3.1.0-2).
            raise ProtocolError("second CONNECT on one connection")
        authflow.start_connect(self, packet)

    def on_auth(self, packet: Auth) -> None:
        authflow.handle_auth(self, packet)

    def on_publish(self, packet: Publish) -> None:
        if self.state != CONNECTED:
            raise ProtocolError("PUBLISH before CONNACK")
        topic = packet.topic
        properties = packet.properties
        if properties:
            if _SUBSCRIPTION_IDENTIFIER in properties:
                # Only the server sets Subscription Identifiers (MQTT-3.3.4-6).
                raise ProtocolError(
                    "PUBLISH from a client with a Subscription Identifier"
                )
            alias = properties.get(_TOPIC_ALIAS)
            if alias is not None:
                topic = self._resolve_alias(alias, topic)
        qos = packet.qos
        settings = self.broker.settings
        if qos > settings.maximum_qos:
            raise MQTTError(f"PUBLISH with QoS {qos}", ReasonCode.QOS_NOT_SUPPORTED)
        if packet.retain and not settings.retain_available:
            raise MQTTError("retained PUBLISH", ReasonCode.RETAIN_NOT_SUPPORTED)
        session = self.session
        if qos:
            if qos == 2 and session.has_inbound(packet.packet_id):  # type: ignore[union-attr]
                # A resent QoS 2 PUBLISH: acknowledge, never deliver twice.
                self.broker.journal.after_commit(self.send_pubrec, packet.packet_id, 0)
                return
            if self.protocol_level == MQTT_5_0:
                self._check_receive_maximum()
        decision = self.broker.authorizers.publish(
            self.identity, topic, qos, packet.retain
        )
        if decision is True:
            self._accept_publish(packet, topic)
        elif decision is False:
            self._deny_publish(packet, topic)
        else:
            # Keep the order of the client's packets: read nothing else until
            # the authorizer has decided.
            self.pause()
            when_decided(decision, self._decided_publish, packet, topic)

    def _decided_publish(self, allowed: bool, packet: Publish, topic: str) -> None:
        if self.state == CLOSED:
            return
        try:
            if allowed:
                self._accept_publish(packet, topic)
            else:
                self._deny_publish(packet, topic)
        except MQTTError as error:
            self.protocol_violation(error)
        self.resume()

    def _resolve_alias(self, alias: int, topic: str) -> str:
        if alias == 0 or alias > self.broker.settings.topic_alias_maximum:
            raise MQTTError(
                f"Topic Alias {alias} out of range", ReasonCode.TOPIC_ALIAS_INVALID
            )
        aliases = self.aliases_in
        if topic:
            if aliases is None:
                aliases = self.aliases_in = {}
            aliases[alias] = topic
            return topic
        known = aliases.get(alias) if aliases is not None else None
        if known is None:
            raise ProtocolError(f"Topic Alias {alias} was never set")
        return known

    def _check_receive_maximum(self) -> None:
        inbound = self.session.inbound  # type: ignore[union-attr]
        unacknowledged = self.pending_acks + (len(inbound) if inbound else 0)
        if unacknowledged >= self.broker.settings.receive_maximum:
            raise MQTTError(
                "more unacknowledged QoS 1 and 2 PUBLISH packets than Receive Maximum",
                ReasonCode.RECEIVE_MAXIMUM_EXCEEDED,
            )

    def _accept_publish(self, packet: Publish, topic: str) -> None:
        properties = packet.properties
        forwarded = None
        expires_at = None
        if properties:
            if properties.get(_PAYLOAD_FORMAT_INDICATOR) == 1 and not _is_utf8(
                packet.payload
            ):
                self._refuse_publish(packet, ReasonCode.PAYLOAD_FORMAT_INVALID)
                return
            forwarded = {
                key: value
                for key, value in properties.items()
                if key not in HOP_PROPERTIES
            }
            interval = properties.get(_MESSAGE_EXPIRY_INTERVAL)
            if interval is not None:
                expires_at = self.broker.reactor.seconds() + interval
        message = Message(
            topic,
            packet.payload,
            packet.qos,
            packet.retain,
            forwarded,
            expires_at,
            self.client_id,
        )
        matched = self.broker.publish(message)
        qos = packet.qos
        if not qos:
            return
        reason_code = 0 if matched else ReasonCode.NO_MATCHING_SUBSCRIBERS
        if qos == 1:
            self.pending_acks += 1
            self.broker.journal.after_commit(
                self.send_puback, packet.packet_id, reason_code
            )
        else:
            self.session.add_inbound(packet.packet_id)  # type: ignore[union-attr]
            self.broker.journal.after_commit(
                self.send_pubrec, packet.packet_id, reason_code
            )

    def _deny_publish(self, packet: Publish, topic: str) -> None:
        log.info(
            "PUBLISH to {topic} by {client_id} ({principal}) denied",
            topic=topic,
            client_id=self.client_id,
            principal=self.identity.principal if self.identity else None,
        )
        if self.protocol_level == MQTT_5_0:
            self._refuse_publish(packet, ReasonCode.NOT_AUTHORIZED)
            return
        if self.broker.settings.disconnect_on_denied_publish:
            self.close(ReasonCode.NOT_AUTHORIZED, None, f"PUBLISH to {topic!r} denied")
            return
        # MQTT 3.1.1 has no way to refuse a PUBLISH: acknowledge it as if it
        # had been delivered, so the client does not resend it forever.
        if packet.qos == 2:
            self.session.add_inbound(packet.packet_id)  # type: ignore[union-attr]
        self._refuse_publish(packet, 0)

    def _refuse_publish(self, packet: Publish, reason_code: int) -> None:
        # Behind any acknowledgement still waiting for a commit, since
        # acknowledgements go out in the order of the PUBLISH packets
        # (MQTT-4.6.0-2, -3).
        after_commit = self.broker.journal.after_commit
        if packet.qos == 1:
            after_commit(self.send_puback, packet.packet_id, reason_code, False)
        elif packet.qos == 2:
            after_commit(self.send_pubrec, packet.packet_id, reason_code)

    def on_puback(self, packet: Puback) -> None:
        self._require_connected(packet)
        self.session.on_puback(packet.packet_id)  # type: ignore[union-attr]

    def on_pubrec(self, packet: Pubrec) -> None:
        self._require_connected(packet)
        known = self.session.on_pubrec(packet.packet_id, packet.reason_code)  # type: ignore[union-attr]
        if packet.reason_code >= 0x80:
            return
        # The PUBREL waits for the commit of the released state: a restart
        # from an older state would send the PUBLISH again, and a client that
        # already had the PUBREL would take it for a new message.
        if known or self.protocol_level != MQTT_5_0:
            self.broker.journal.after_commit(self.send_pubrel, packet.packet_id)
        else:
            self.broker.journal.after_commit(
                self.send_control,
                Pubrel(packet.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND),
            )

    def on_pubrel(self, packet: Pubrel) -> None:
        self._require_connected(packet)
        known = self.session.release_inbound(packet.packet_id)  # type: ignore[union-attr]
        reason_code = 0 if known else ReasonCode.PACKET_IDENTIFIER_NOT_FOUND
        # The PUBCOMP waits for the commit that forgets the packet id: after a
        # restart from an older state, a new PUBLISH that reuses the id would
        # be taken for a resent one and never delivered.
        self.broker.journal.after_commit(
            self.send_pubcomp, packet.packet_id, reason_code
        )

    def on_pubcomp(self, packet: Pubcomp) -> None:
        self._require_connected(packet)
        self.session.on_pubcomp(packet.packet_id)  # type: ignore[union-attr]

    def on_subscribe(self, packet: Subscribe) -> None:
        self._require_connected(packet)
        subscriptions.handle_subscribe(self, packet)

    def on_unsubscribe(self, packet: Unsubscribe) -> None:
        self._require_connected(packet)
        subscriptions.handle_unsubscribe(self, packet)

    def on_pingreq(self, packet: Pingreq) -> None:
        self._require_connected(packet)
        self.transport.write(_PINGRESP)

    def on_disconnect(self, packet: Disconnect) -> None:
        if self.state != CONNECTED:
            # A DISCONNECT in place of the AUTH reply ends the attempt.
            self._end(publish_will=False, reason="DISCONNECT before CONNACK")
            self.transport.loseConnection()
            return
        session = self.session
        interval = packet.properties.get(PropertyId.SESSION_EXPIRY_INTERVAL)
        if interval is not None:
            if session.expiry_interval == 0 and interval != 0:  # type: ignore[union-attr]
                raise ProtocolError(
                    "DISCONNECT sets a Session Expiry Interval after CONNECT set 0"
                )
            self.broker.change_session_expiry(session, interval)
        reason_code = packet.reason_code
        publish_will = reason_code != ReasonCode.NORMAL_DISCONNECTION
        self._end(publish_will, reason=f"DISCONNECT 0x{reason_code:02X} from client")
        self.transport.loseConnection()

    def on_unexpected(self, packet: Packet) -> None:
        raise ProtocolError(f"{packet.packet_type.name} is never sent to a server")

    def _require_connected(self, packet: Packet) -> None:
        if self.state != CONNECTED:
            raise ProtocolError(f"{packet.packet_type.name} before CONNACK")

    # -- writing -------------------------------------------------------------------

    def send_control(self, packet: Packet) -> bool:
        """Send a packet other than a delivery PUBLISH, within the client's limits.

        A Reason String or User Property is left out where the client's Request
        Problem Information forbids it, and when it would make the packet
        larger than the client's Maximum Packet Size (MQTT-3.1.2-24).  Return
        False when even the trimmed packet would be too large (not sent).
        """
        if self.state == CLOSED or self.transport is None:
            return False
        level = self.protocol_level or MQTT_5_0
        properties = getattr(packet, "properties", None)
        if level == MQTT_5_0 and properties:
            if (
                not self.problem_information
                and packet.packet_type not in _PROBLEM_INFORMATION_ALWAYS
            ):
                _drop_problem_information(properties)
        data = encode(packet, level)
        if len(data) > self.max_send_size and properties:
            _drop_problem_information(properties)
            data = encode(packet, level)
        if len(data) > self.max_send_size:
            return False
        self.transport.write(data)
        return True

    def send_publish(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_identifiers: tuple[int, ...],
        packet_id: int | None,
        dup: bool,
    ) -> bool:
        """Send ``message`` as a PUBLISH; return False when it was too large.

        The Message Expiry Interval goes out as what is left of it.
        """
        if self.state != CONNECTED:
            return False
        level = self.protocol_level
        expiry = None
        if message.expires_at is not None:
            expiry = max(
                message.remaining_expiry(self.broker.reactor.seconds()) or 1, 1
            )
        if self.topic_alias_out_maximum:
            data, offset = self._encode_with_alias(
                message, qos, retain, subscription_identifiers, expiry
            )
        else:
            data, offset = message.encode(
                level, qos, retain, subscription_identifiers, expiry
            )
        if len(data) > self.max_send_size:
            log.info(
                "PUBLISH to {topic} not sent to {client_id}: {size} bytes exceed its "
                "Maximum Packet Size {maximum}",
                topic=message.topic,
                client_id=self.client_id,
                size=len(data),
                maximum=self.max_send_size,
            )
            return False
        backlog = self.backlog
        if backlog >= 0:
            if not qos and backlog > MAX_BACKLOG:
                # The count only grows while the buffer never drains fully;
                # ask the transport how much really waits before dropping.
                backlog = self.backlog = _buffered_bytes(self.transport)
                if backlog > MAX_BACKLOG:
                    self._drop_for_backlog(message)
                    return True
            self.backlog = backlog + len(data)
        if qos:
            data = with_packet_id(data, offset, packet_id, dup)  # type: ignore[arg-type]
        self.transport.write(data)
        return True

    def _drop_for_backlog(self, message: Message) -> None:
        session = self.session
        if session is None:
            return
        session.dropped += 1
        if session.dropped == 1 or session.dropped % 1000 == 0:
            log.warn(
                "{client_id} reads too slowly: dropped a QoS 0 message to {topic}, "
                "{dropped} dropped so far",
                client_id=self.client_id,
                topic=message.topic,
                dropped=session.dropped,
            )

    def _encode_with_alias(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_identifiers: tuple[int, ...],
        expiry: int | None,
    ) -> tuple[bytes, int]:
        aliases = self.aliases_out
        if aliases is None:
            aliases = self.aliases_out = {}
        topic = message.topic
        alias = aliases.get(topic)
        if alias is not None:
            return message.encode_with_alias(
                MQTT_5_0, qos, retain, subscription_identifiers, expiry, alias, False
            )
        if len(aliases) < self.topic_alias_out_maximum:
            alias = len(aliases) + 1
            form = message.encode_with_alias(
                MQTT_5_0, qos, retain, subscription_identifiers, expiry, alias, True
            )
            if len(form[0]) <= self.max_send_size:
                aliases[topic] = alias
            return form
        return message.encode(MQTT_5_0, qos, retain, subscription_identifiers, expiry)

    def send_puback(
        self, packet_id: int, reason_code: int, counted: bool = True
    ) -> None:
        if counted:
            self.pending_acks -= 1
        if self.state == CONNECTED:
            self._send_ack(0x40, packet_id, reason_code)

    def send_pubrec(self, packet_id: int, reason_code: int) -> None:
        if self.state == CONNECTED:
            self._send_ack(0x50, packet_id, reason_code)

    def _send_ack(self, first_byte: int, packet_id: int, reason_code: int) -> None:
        """Write a PUBACK, PUBREC, PUBREL or PUBCOMP without properties.

        These have a fixed layout, so they are built here without the codec:
        the reason code is left out when it is 0 or on 3.1.1 (MQTT-3.4.2.1).
        """
        if reason_code and self.protocol_level == MQTT_5_0:
            data = (
                bytes((first_byte, 3))
                + packet_id.to_bytes(2, "big")
                + bytes((reason_code,))
            )
        else:
            data = bytes((first_byte, 2)) + packet_id.to_bytes(2, "big")
        if len(data) <= self.max_send_size:
            self.transport.write(data)

    def send_pubrel(self, packet_id: int) -> None:
        if self.state == CONNECTED:
            self._send_ack(0x62, packet_id, 0)

    def send_pubcomp(self, packet_id: int, reason_code: int) -> None:
        if self.state == CONNECTED:
            self._send_ack(0x70, packet_id, reason_code)

    # -- ending ----------------------------------------------------------------------

    def close(self, reason_code: int, reason_string: str | None, reason: str) -> None:
        """End the connection from the server side; the will is published.

        A 5.0 client that has its CONNACK gets a DISCONNECT with
        ``reason_code`` (and ``reason_string``, where it fits) first.
        """
        if self.state == CLOSED:
            return
        if self.state == CONNECTED and self.protocol_level == MQTT_5_0:
            properties = (
                {PropertyId.REASON_STRING: reason_string} if reason_string else {}
            )
            self.send_control(
                Disconnect(disconnect_reason_code(reason_code), properties)
            )
        self._end(publish_will=True, reason=reason)
        if self.transport is not None:
            self.transport.loseConnection()

    def _end(self, publish_will: bool, reason: str) -> None:
        """Mark the connection closed and hand its session back to the broker."""
        previous = self.state
        self.state = CLOSED
        if self.transport is not None and previous != CLOSED:
            try:
                self.transport.unregisterProducer()
            except RuntimeError:
                pass
        timer, self.credential_timer = self.credential_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if self.flow is not None:
            self.flow.abandon()
            self.flow = None
        if previous == CONNECTED:
            log.info(
                "Disconnected {client_id} at {peer}: {reason}",
                client_id=self.client_id,
                peer=self.peer,
                reason=reason,
            )
            self.broker.connection_ended(self, publish_will)

    def detach(self) -> None:
        """Forget the session without touching it (it was taken over)."""
        self.session = None

    def session_expiry_for(self, interval: int) -> int:
        """Return ``interval`` capped by the broker's maximum."""
        maximum = self.broker.settings.max_session_expiry_interval
        if interval == NEVER_EXPIRES and maximum == NEVER_EXPIRES:
            return NEVER_EXPIRES
        return min(interval, maximum)


#: Codes that may end a CONNECT but not a connection, and the DISCONNECT
#: code that stands for them.
_AUTHENTICATION_FAILURES = frozenset({0x84, 0x85, 0x86, 0x8A, 0x8C})


def _buffered_bytes(transport: Any) -> int:
    """Return the bytes a transport holds that the kernel has not taken yet.

    Reads the write buffer of Twisted's TCP transport (``FileDescriptor``)
    or of the TCP transport under a TLS one.  Returns 0 when the transport
    is of another kind, so nothing is dropped for it.
    """
    for candidate in (transport, getattr(transport, "transport", None)):
        try:
            return len(candidate.dataBuffer) - candidate.offset + candidate._tempDataLen
        except (AttributeError, TypeError):
            continue
    return 0


def sniff_protocol_level(head: bytes) -> int | None:
    """Return the protocol level of a CONNECT named "MQTT" from its first bytes.

    None when ``head`` is too short or is not such a CONNECT.
    """
    if not head or head[0] != 0x10:
        return None
    index = 1
    while index < len(head) and head[index] & 0x80 and index < 4:
        index += 1
    index += 1
    if head[index : index + 6] != b"\x00\x04MQTT" or len(head) <= index + 6:
        return None
    return head[index + 6]


def disconnect_reason_code(reason_code: int) -> int:
    """Return ``reason_code`` if a DISCONNECT may carry it, else the nearest one.

    Authentication failures (such as 0x86 Bad User Name or Password, which
    only a CONNACK may carry) become 0x87 Not authorized; the rest 0x80.
    """
    if reason_code in REASON_CODES_5[PacketType.DISCONNECT]:
        return reason_code
    if reason_code in _AUTHENTICATION_FAILURES:
        return ReasonCode.NOT_AUTHORIZED
    return ReasonCode.UNSPECIFIED_ERROR


def _drop_problem_information(properties: dict[int, Any]) -> None:
    properties.pop(PropertyId.REASON_STRING, None)
    properties.pop(PropertyId.USER_PROPERTY, None)


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_DISPATCH: dict[type, Any] = {
    Connect: MQTTServerProtocol.on_connect,
    Publish: MQTTServerProtocol.on_publish,
    Puback: MQTTServerProtocol.on_puback,
    Pubrec: MQTTServerProtocol.on_pubrec,
    Pubrel: MQTTServerProtocol.on_pubrel,
    Pubcomp: MQTTServerProtocol.on_pubcomp,
    Subscribe: MQTTServerProtocol.on_subscribe,
    Unsubscribe: MQTTServerProtocol.on_unsubscribe,
    Pingreq: MQTTServerProtocol.on_pingreq,
    Disconnect: MQTTServerProtocol.on_disconnect,
    Auth: MQTTServerProtocol.on_auth,
    Connack: MQTTServerProtocol.on_unexpected,
    Suback: MQTTServerProtocol.on_unexpected,
    Unsuback: MQTTServerProtocol.on_unexpected,
    Pingresp: MQTTServerProtocol.on_unexpected,
}
