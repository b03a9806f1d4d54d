"""CONNECT, enhanced authentication and re-authentication.

A CONNECT is checked, then handed to the authenticator, which may decide at
once or later (a Deferred), and may ask for more AUTH rounds
(:class:`AuthContinue`).  While the authenticator decides, the connection
reads no further packets; during AUTH rounds it reads only AUTH and
DISCONNECT (MQTT-3.1.2-30, MQTT-4.12.0).  Only once the client is
authenticated does its session take over an existing connection with the
same client id, so a CONNECT that fails authentication disturbs no one.

Every refusal gets a CONNACK before the close, never a bare close.  A
credential with an expiry time arms a timer that ends the connection when
it passes; a successful re-authentication (AUTH 0x19) re-arms it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from mqttauth.auth.interfaces import (
    AuthContinue,
    AuthenticationError,
    AuthRequest,
    AuthSuccess,
    Identity,
)
from mqttauth.mqtt.codec import MAX_PACKET_SIZE_LIMIT, encode
from mqttauth.mqtt.constants import (
    CONNACK_3_1_1_FOR_REASON,
    MQTT_5_0,
    ConnackReturnCode,
    PacketType,
    PropertyId,
    ReasonCode,
)
from mqttauth.mqtt.errors import (
    MQTTError,
    ProtocolError,
    UnsupportedProtocolVersionError,
)
from mqttauth.mqtt.packets import Auth, Connack, Connect
from mqttauth.mqtt.reason_codes import REASON_CODES_5

from .session import NEVER_EXPIRES

if TYPE_CHECKING:
    from .protocol import MQTTServerProtocol

log = Logger(namespace="mqttauth.broker.authflow")

_P = PropertyId

#: 3.1.1 return code for a refusal whose 5.0 reason code has no 3.1.1 twin.
_SERVER_SIDE = {
    ReasonCode.UNSPECIFIED_ERROR,
    ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR,
    ReasonCode.QUOTA_EXCEEDED,
    ReasonCode.CONNECTION_RATE_EXCEEDED,
}


def connack_code(reason_code: int, protocol_level: int) -> int:
    """Return the CONNACK code for ``reason_code`` in the client's version.

    A 5.0 reason code that a CONNACK may not carry becomes 0x80.
    """
    if protocol_level == MQTT_5_0:
        if reason_code in REASON_CODES_5[PacketType.CONNACK]:
            return reason_code
        return ReasonCode.UNSPECIFIED_ERROR
    code = CONNACK_3_1_1_FOR_REASON.get(reason_code)
    if code is not None:
        return code
    if reason_code in _SERVER_SIDE:
        return ConnackReturnCode.SERVER_UNAVAILABLE
    return ConnackReturnCode.NOT_AUTHORIZED


def refuse(
    protocol: MQTTServerProtocol,
    reason_code: int,
    reason_string: str | None,
    reason: str,
) -> None:
    """Send a refusing CONNACK with ``reason_code`` and close the connection."""
    from .protocol import CLOSED

    if protocol.state == CLOSED:
        return
    level = protocol.protocol_level
    properties = {}
    if reason_string and level == MQTT_5_0:
        properties[_P.REASON_STRING] = reason_string
    protocol.send_control(Connack(connack_code(reason_code, level), False, properties))
    if protocol.broker.refusal_log.allow():
        log.info(
            "Refused CONNECT of {client_id} at {peer}: {reason} (reason code "
            "0x{reason_code:02X})",
            client_id=protocol.client_id,
            peer=protocol.peer,
            reason=reason,
            reason_code=int(reason_code),
        )
    protocol._end(publish_will=False, reason=reason)
    protocol.transport.loseConnection()


def reject_before_connack(protocol: MQTTServerProtocol, error: MQTTError) -> None:
    """Send a refusing CONNACK or close for a protocol violation before CONNACK.

    An unsupported protocol version gets CONNACK 0x84, or return code 1 in
    3.1.1 form for levels below 5, which is what an MQTT 3.1 client reads
    (MQTT-3.1.2-2).  Other errors get a 5.0 CONNACK with their reason code
    once the CONNECT has been read, and a close otherwise.
    """
    if isinstance(error, UnsupportedProtocolVersionError):
        # Levels below 5 get the 3.1.1 form, which MQTT 3.1 clients read too.
        protocol.protocol_level = 4 if error.protocol_level < MQTT_5_0 else MQTT_5_0
        code = ReasonCode.UNSUPPORTED_PROTOCOL_VERSION
        refuse(protocol, code, None, str(error))
        return
    if not protocol.protocol_level:
        from .protocol import sniff_protocol_level

        if sniff_protocol_level(protocol.head) == MQTT_5_0:
            protocol.protocol_level = MQTT_5_0
    if protocol.protocol_level == MQTT_5_0:
        refuse(protocol, error.reason_code, None, str(error))
        return
    protocol._end(publish_will=False, reason=str(error))
    protocol.transport.loseConnection()


def start_connect(protocol: MQTTServerProtocol, connect: Connect) -> None:
    """Check a CONNECT and start authenticating it."""
    from .protocol import CONNECTING

    broker = protocol.broker
    settings = broker.settings
    protocol.state = CONNECTING
    protocol.head = b""
    level = protocol.protocol_level = connect.protocol_level
    properties = connect.properties
    if level == MQTT_5_0:
        protocol.problem_information = (
            properties.get(_P.REQUEST_PROBLEM_INFORMATION, 1) == 1
        )
        protocol.max_send_size = properties.get(_P.MAXIMUM_PACKET_SIZE, 0xFFFFFFFF)
        protocol.window = min(
            properties.get(_P.RECEIVE_MAXIMUM, 65535), settings.max_inflight
        )
        protocol.topic_alias_out_maximum = properties.get(_P.TOPIC_ALIAS_MAXIMUM, 0)
    client_id = connect.client_id
    assigned = False
    if not client_id:
        if level != MQTT_5_0 and not connect.clean_start:
            # MQTT-3.1.3-8: a 3.1.1 client without an id must use a clean session.
            refuse(
                protocol,
                ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
                None,
                "empty client id",
            )
            return
        client_id = broker.assign_client_id()
        assigned = level == MQTT_5_0
    protocol.client_id = client_id
    if (
        settings.max_connections
        and len(broker.connections) >= settings.max_connections
        and client_id not in broker.connections
    ):
        refuse(
            protocol,
            ReasonCode.QUOTA_EXCEEDED,
            "The server has reached its connection limit",
            "connection limit reached",
        )
        return
    will = connect.will
    if will is not None:
        if will.qos > settings.maximum_qos:
            if level == MQTT_5_0:
                refuse(
                    protocol,
                    ReasonCode.QOS_NOT_SUPPORTED,
                    None,
                    "will QoS not supported",
                )
                return
            will.qos = settings.maximum_qos
        if will.retain and not settings.retain_available:
            if level == MQTT_5_0:
                refuse(protocol, ReasonCode.RETAIN_NOT_SUPPORTED, None, "will retain")
                return
            will.retain = False
    max_keep_alive = settings.max_keep_alive
    if (
        level != MQTT_5_0
        and max_keep_alive
        and not 0 < connect.keep_alive <= max_keep_alive
    ):
        # MQTT 3.1.1 has no Server Keep Alive to tell the client a shorter
        # value, so the CONNECT is refused rather than dropped later as idle.
        refuse(
            protocol,
            ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
            None,
            f"keep alive {connect.keep_alive} s is 0 or above the maximum keep "
            f"alive of {max_keep_alive} s, which an MQTT 3.1.1 client cannot be "
            "told",
        )
        return
    method = properties.get(_P.AUTHENTICATION_METHOD)
    if method is None and _P.AUTHENTICATION_DATA in properties:
        refuse(
            protocol,
            ReasonCode.PROTOCOL_ERROR,
            None,
            "Authentication Data without method",
        )
        return
    if method is not None and method not in tuple(broker.authenticator.methods):
        refuse(
            protocol,
            ReasonCode.BAD_AUTHENTICATION_METHOD,
            f"Authentication method {method!r} is not supported",
            f"unsupported authentication method {method!r}",
        )
        return
    if getattr(protocol.factory, "tls", False):
        try:
            protocol.peer_certificate = protocol.transport.getPeerCertificate()
        except Exception:
            protocol.peer_certificate = None
    flow = ConnectFlow(protocol, connect, method, assigned)
    protocol.flow = flow
    flow.authenticate(
        AuthRequest(
            client_id=client_id,
            protocol_level=level,
            peer=protocol.peer,
            username=connect.username,
            password=connect.password,
            method=method,
            data=properties.get(_P.AUTHENTICATION_DATA),
            peer_certificate=protocol.peer_certificate,
        )
    )


class _Exchange:
    """The authenticator calls of a CONNECT or re-authentication exchange."""

    __slots__ = ("protocol", "method", "auth_state", "waiting", "abandoned", "paused")

    def __init__(self, protocol: MQTTServerProtocol, method: str | None) -> None:
        self.protocol = protocol
        self.method = method
        #: The ``state`` of the last AuthContinue.
        self.auth_state: Any = None
        #: Whether an AUTH from the client is expected next.
        self.waiting = False
        self.abandoned = False
        self.paused = False

    def abandon(self) -> None:
        """Ignore whatever the authenticator returns later (the connection is gone)."""
        self.abandoned = True

    def authenticate(self, request: AuthRequest) -> None:
        try:
            result = self.protocol.broker.authenticator.authenticate(request)
        except AuthenticationError as error:
            self.rejected(error)
            return
        except Exception:
            self.crashed(Failure())
            return
        if isinstance(result, Deferred):
            if not result.called and self.blocks_reading():
                self.paused = True
                self.protocol.pause()
            result.addCallbacks(self._answered, self._failed)
        else:
            self._answered(result)

    def blocks_reading(self) -> bool:
        return True

    def _answered(self, result: object) -> None:
        if self.abandoned:
            return
        if isinstance(result, AuthSuccess):
            self.succeeded(result)
        elif isinstance(result, AuthContinue):
            self.continued(result)
        else:
            log.error(
                "Authenticator returned {result!r}, not AuthSuccess or AuthContinue",
                result=result,
            )
            self.refuse(ReasonCode.UNSPECIFIED_ERROR, None, "authenticator error")
        self._unpause()

    def _failed(self, failure: Failure) -> None:
        if not self.abandoned:
            if failure.check(AuthenticationError):
                self.rejected(failure.value)
            else:
                self.crashed(failure)
        self._unpause()

    def _unpause(self) -> None:
        if self.paused:
            self.paused = False
            self.protocol.resume()

    def continued(self, result: AuthContinue) -> None:
        if self.method is None:
            log.error(
                "Authenticator asked {client_id} for another AUTH round, but the "
                "client named no Authentication Method",
                client_id=self.protocol.client_id,
            )
            self.refuse(ReasonCode.UNSPECIFIED_ERROR, None, "authenticator error")
            return
        self.auth_state = result.state
        self.waiting = True
        properties: dict[int, Any] = {_P.AUTHENTICATION_METHOD: self.method}
        if result.data is not None:
            properties[_P.AUTHENTICATION_DATA] = result.data
        self.protocol.send_control(Auth(ReasonCode.CONTINUE_AUTHENTICATION, properties))

    def next_round(self, packet: Auth, current: Identity | None) -> None:
        """Pass the client's AUTH answer to the authenticator."""
        protocol = self.protocol
        self.waiting = False
        self.authenticate(
            AuthRequest(
                client_id=protocol.client_id,
                protocol_level=protocol.protocol_level,
                peer=protocol.peer,
                method=self.method,
                data=packet.properties.get(_P.AUTHENTICATION_DATA),
                current=current,
                state=self.auth_state,
                peer_certificate=protocol.peer_certificate,
            )
        )

    def rejected(self, error: AuthenticationError) -> None:
        reason = error.reason
        if error.key_id is not None:
            reason += f", key id {error.key_id}"
        self.refuse(error.reason_code, error.reason_string, reason)

    def crashed(self, failure: Failure) -> None:
        if self.protocol.broker.refusal_log.allow():
            log.failure(
                "Authenticator failed for {client_id} at {peer}",
                failure=failure,
                client_id=self.protocol.client_id,
                peer=self.protocol.peer,
            )
        self.refuse(ReasonCode.UNSPECIFIED_ERROR, None, "authenticator error")

    def succeeded(self, result: AuthSuccess) -> None:
        raise NotImplementedError

    def refuse(self, reason_code: int, reason_string: str | None, reason: str) -> None:
        raise NotImplementedError


class ConnectFlow(_Exchange):
    """The authentication of a CONNECT, up to its CONNACK."""

    __slots__ = ("connect", "assigned")

    def __init__(
        self,
        protocol: MQTTServerProtocol,
        connect: Connect,
        method: str | None,
        assigned: bool,
    ) -> None:
        super().__init__(protocol, method)
        self.connect = connect
        self.assigned = assigned

    def refuse(self, reason_code: int, reason_string: str | None, reason: str) -> None:
        self.protocol.flow = None
        refuse(self.protocol, reason_code, reason_string, reason)

    def succeeded(self, result: AuthSuccess) -> None:
        from .protocol import CONNECTED

        protocol = self.protocol
        broker = protocol.broker
        settings = broker.settings
        connect = self.connect
        level = protocol.protocol_level
        protocol.flow = None
        protocol.identity = result.identity
        protocol.auth_method = self.method
        protocol.will = connect.will
        requested_keep_alive = connect.keep_alive
        keep_alive = requested_keep_alive
        if settings.max_keep_alive and (
            keep_alive == 0 or keep_alive > settings.max_keep_alive
        ):
            keep_alive = settings.max_keep_alive
        protocol.keep_alive = keep_alive
        if level == MQTT_5_0:
            requested_expiry = connect.properties.get(_P.SESSION_EXPIRY_INTERVAL, 0)
        else:
            requested_expiry = 0 if connect.clean_start else NEVER_EXPIRES
        expiry = protocol.session_expiry_for(requested_expiry)
        session, present = broker.open_session(protocol, connect.clean_start, expiry)
        properties: dict[int, Any] = {}
        if level == MQTT_5_0:
            properties = self._connack_properties(keep_alive, requested_keep_alive)
            if expiry != requested_expiry:
                properties[_P.SESSION_EXPIRY_INTERVAL] = expiry
            if self.method is not None:
                properties[_P.AUTHENTICATION_METHOD] = self.method
                if result.data is not None:
                    properties[_P.AUTHENTICATION_DATA] = result.data
        protocol.state = CONNECTED
        if not _send_connack(protocol, present, properties):
            log.info(
                "Closed {client_id} at {peer}: no CONNACK fits its Maximum Packet "
                "Size {maximum}",
                client_id=protocol.client_id,
                peer=protocol.peer,
                maximum=protocol.max_send_size,
            )
            protocol._end(publish_will=False, reason="CONNACK too large")
            protocol.transport.loseConnection()
            return
        log.info(
            "Connected {client_id} at {peer}: protocol level {protocol_level}, "
            "clean start {clean_start}, keep alive {keep_alive}, principal "
            "{principal}, session present {session_present}",
            client_id=protocol.client_id,
            peer=protocol.peer,
            protocol_level=level,
            clean_start=connect.clean_start,
            keep_alive=keep_alive,
            principal=result.identity.principal,
            session_present=present,
        )
        arm_credential_timer(protocol)
        session.resume()

    def _connack_properties(self, keep_alive: int, requested: int) -> dict[int, Any]:
        settings = self.protocol.broker.settings
        properties: dict[int, Any] = {
            _P.RETAIN_AVAILABLE: int(settings.retain_available),
            _P.WILDCARD_SUBSCRIPTION_AVAILABLE: int(
                settings.wildcard_subscription_available
            ),
            _P.SUBSCRIPTION_IDENTIFIER_AVAILABLE: int(
                settings.subscription_identifier_available
            ),
            _P.SHARED_SUBSCRIPTION_AVAILABLE: int(
                settings.shared_subscription_available
            ),
        }
        if settings.receive_maximum < 65535:
            properties[_P.RECEIVE_MAXIMUM] = settings.receive_maximum
        if settings.max_packet_size < MAX_PACKET_SIZE_LIMIT:
            properties[_P.MAXIMUM_PACKET_SIZE] = settings.max_packet_size
        if settings.topic_alias_maximum:
            properties[_P.TOPIC_ALIAS_MAXIMUM] = settings.topic_alias_maximum
        if settings.maximum_qos < 2:
            properties[_P.MAXIMUM_QOS] = settings.maximum_qos
        if keep_alive != requested:
            properties[_P.SERVER_KEEP_ALIVE] = keep_alive
        if self.assigned:
            properties[_P.ASSIGNED_CLIENT_IDENTIFIER] = self.protocol.client_id
        return properties


#: Encoded successful CONNACKs by (protocol level, Session Present, properties).
#: Most connections get the same few, so each is encoded once.
_CONNACK_CACHE: dict[tuple[int, bool, tuple[tuple[int, Any], ...]], bytes] = {}


#: CONNACK properties that the broker may leave out when their value is 1,
#: since a client reads their absence as 1.
_AVAILABLE_BY_DEFAULT = (
    _P.RETAIN_AVAILABLE,
    _P.WILDCARD_SUBSCRIPTION_AVAILABLE,
    _P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    _P.SHARED_SUBSCRIPTION_AVAILABLE,
)


def _send_connack(
    protocol: MQTTServerProtocol, present: bool, properties: dict[int, Any]
) -> bool:
    """Send a successful CONNACK; return False if none fits the Maximum Packet Size."""
    if (
        _P.ASSIGNED_CLIENT_IDENTIFIER in properties
        or _P.AUTHENTICATION_DATA in properties
    ):
        return _send_fitting_connack(protocol, present, properties)
    key = (protocol.protocol_level, present, tuple(sorted(properties.items())))
    data = _CONNACK_CACHE.get(key)
    if data is None:
        if len(_CONNACK_CACHE) >= 256:
            _CONNACK_CACHE.clear()
        data = _CONNACK_CACHE[key] = encode(Connack(0, present, properties), key[0])
    if len(data) > protocol.max_send_size:
        return _send_fitting_connack(protocol, present, properties)
    protocol.transport.write(data)
    return True


def _send_fitting_connack(
    protocol: MQTTServerProtocol, present: bool, properties: dict[int, Any]
) -> bool:
    """Send a CONNACK within the client's Maximum Packet Size (MQTT-3.1.2-24).

    When the full CONNACK is too large, the properties that only repeat
    their default value are left out.  Return False when it still does
    not fit, so nothing was sent.
    """
    if protocol.send_control(Connack(0, present, dict(properties))):
        return True
    for identifier in _AVAILABLE_BY_DEFAULT:
        if properties.get(identifier) == 1:
            del properties[identifier]
    return protocol.send_control(Connack(0, present, properties))


class ReauthFlow(_Exchange):
    """A re-authentication (AUTH 0x19) while the connection carries on."""

    __slots__ = ()

    def blocks_reading(self) -> bool:
        # Other packets keep flowing under the old authentication (4.12.1).
        return False

    def refuse(self, reason_code: int, reason_string: str | None, reason: str) -> None:
        self.protocol.flow = None
        self.protocol.close(
            reason_code, reason_string, f"re-authentication failed: {reason}"
        )

    def succeeded(self, result: AuthSuccess) -> None:
        protocol = self.protocol
        protocol.flow = None
        current = protocol.identity
        identity = result.identity
        if current is not None and identity.principal != current.principal:
            log.info(
                "Re-authentication of {client_id} changed the principal from "
                "{old} to {new}; disconnecting",
                client_id=protocol.client_id,
                old=current.principal,
                new=identity.principal,
            )
            protocol.close(
                ReasonCode.NOT_AUTHORIZED,
                "Re-authentication must keep the same principal",
                "re-authentication changed the principal",
            )
            return
        protocol.identity = identity
        session = protocol.session
        if session is not None:
            session.identity = identity
            protocol.broker.revalidate_session(session)
        arm_credential_timer(protocol)
        properties: dict[int, Any] = {_P.AUTHENTICATION_METHOD: self.method}
        if result.data is not None:
            properties[_P.AUTHENTICATION_DATA] = result.data
        protocol.send_control(Auth(ReasonCode.SUCCESS, properties))
        log.info(
            "Re-authenticated {client_id} at {peer} as {principal}",
            client_id=protocol.client_id,
            peer=protocol.peer,
            principal=identity.principal,
        )


def handle_auth(protocol: MQTTServerProtocol, packet: Auth) -> None:
    """Handle an AUTH packet from the client in any state."""
    from .protocol import CONNECTED

    flow = protocol.flow
    method = packet.properties.get(_P.AUTHENTICATION_METHOD)
    if protocol.state != CONNECTED:
        if not isinstance(flow, ConnectFlow) or not flow.waiting:
            raise ProtocolError("AUTH that no AUTH from the server asked for")
        if packet.reason_code != ReasonCode.CONTINUE_AUTHENTICATION:
            raise ProtocolError(f"AUTH 0x{packet.reason_code:02X} during CONNECT")
        if method != flow.method:
            raise ProtocolError(f"AUTH with another method {method!r}")
        flow.next_round(packet, None)
        return
    if protocol.auth_method is None:
        # A client that named no method must not send AUTH (MQTT-4.12.0-4).
        raise ProtocolError(
            "AUTH from a client that did not use enhanced authentication"
        )
    if method != protocol.auth_method:
        raise ProtocolError(f"AUTH with another method {method!r}")
    if packet.reason_code == ReasonCode.RE_AUTHENTICATE:
        if flow is not None:
            raise ProtocolError("AUTH 0x19 while a re-authentication is in progress")
        flow = protocol.flow = ReauthFlow(protocol, method)
        flow.auth_state = None
        flow.next_round(packet, protocol.identity)
        return
    if packet.reason_code == ReasonCode.CONTINUE_AUTHENTICATION:
        if not isinstance(flow, ReauthFlow) or not flow.waiting:
            raise ProtocolError("AUTH 0x18 that no AUTH from the server asked for")
        flow.next_round(packet, protocol.identity)
        return
    raise ProtocolError(f"AUTH 0x{packet.reason_code:02X} from a client")


def arm_credential_timer(protocol: MQTTServerProtocol) -> None:
    """(Re)start the timer that ends the connection when the credential expires."""
    timer, protocol.credential_timer = protocol.credential_timer, None
    if timer is not None and timer.active():
        timer.cancel()
    identity = protocol.identity
    if identity is None or identity.expires_at is None:
        return
    reactor = protocol.broker.reactor
    delay = max(0.0, identity.expires_at - reactor.seconds())
    protocol.credential_timer = reactor.callLater(delay, _credential_expired, protocol)


def _credential_expired(protocol: MQTTServerProtocol) -> None:
    protocol.credential_timer = None
    reason_code = protocol.broker.settings.credential_expiry_reason_code
    protocol.close(reason_code, "The credential has expired", "credential expired")
