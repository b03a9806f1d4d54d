"""The broker's limits and behaviour switches, as the service passes them in."""

from __future__ import annotations

from dataclasses import dataclass

from mqttauth.mqtt.constants import ReasonCode


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    #: Connections accepted at once; 0 means no limit.  Past it a CONNECT
    #: gets CONNACK 0x97 Quota exceeded (3.1.1: return code 3).
    max_connections: int = 0
    #: Largest packet accepted from a client, in bytes, fixed header included.
    #: Sent as Maximum Packet Size in the 5.0 CONNACK.
    max_packet_size: int = 1024 * 1024
    #: Receive Maximum the broker announces: QoS 1 and 2 PUBLISH packets a
    #: client may have unacknowledged towards the broker.
    receive_maximum: int = 1024
    #: Upper bound on QoS 1 and 2 messages in flight towards one client,
    #: applied on top of the client's own Receive Maximum.
    max_inflight: int = 256
    #: Messages queued for one session beyond those in flight; when the
    #: queue is full, newer messages are dropped and the drop is logged.
    max_queued_messages: int = 1000
    #: Topic Alias Maximum the broker announces for client-to-broker aliases.
    topic_alias_maximum: int = 64
    #: Longest Keep Alive accepted, in seconds; a longer (or zero) request from
    #: a 5.0 client is answered with this as Server Keep Alive.  0: no limit.
    max_keep_alive: int = 0
    #: Seconds a new connection may take to send its CONNECT.
    connect_timeout: float = 10.0
    #: Longest Session Expiry Interval granted, in seconds.
    max_session_expiry_interval: int = 0xFFFFFFFF
    retain_available: bool = True
    #: Highest QoS accepted in a PUBLISH; announced as Maximum QoS when below 2.
    maximum_qos: int = 2
    wildcard_subscription_available: bool = True
    subscription_identifier_available: bool = True
    shared_subscription_available: bool = True
    #: When True, a 3.1.1 client whose PUBLISH is denied is disconnected
    #: instead of getting an acknowledgement for a message that goes nowhere.
    disconnect_on_denied_publish: bool = False
    #: DISCONNECT reason code when a credential's expiry passes: 0x87 Not
    #: authorized, or 0xA0 Maximum connect time.
    credential_expiry_reason_code: ReasonCode = ReasonCode.NOT_AUTHORIZED
