"""SUBSCRIBE and UNSUBSCRIBE, and the retained messages a subscription gets.

Each requested filter is checked (syntax, shared subscription form, the
broker's features), then the authorizer chain decides it with the
``$share/{ShareName}/`` prefix removed.  The SUBACK carries one code per
filter, in order: the granted QoS, or 0x80 on 3.1.1 and the specific 5.0
reason code otherwise.  After the SUBACK the matching retained messages go
out as Retain Handling sets (0: always, 1: only for a new subscription,
2: never; never for a shared subscription), each one only where the
authorizer chain allows reading its topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from mqttauth.mqtt.constants import MQTT_5_0, SUBACK_FAILURE, PropertyId, ReasonCode
from mqttauth.mqtt.errors import (
    MalformedPacketError,
    MQTTError,
    ProtocolError,
    TopicFilterInvalidError,
)
from mqttauth.mqtt.packets import Suback, Subscribe, Unsuback, Unsubscribe
from mqttauth.mqtt.topics import parse_shared_subscription, validate_topic_filter

from .topictree import Subscription

if TYPE_CHECKING:
    from .protocol import MQTTServerProtocol

log = Logger(namespace="mqttauth.broker.subscriptions")


def _filter_parts(topic_filter: str, level: int) -> tuple[str | None, str] | int:
    """Return (share name, filter to match), or the 5.0 code refusing it.

    On 3.1.1 an invalid filter makes the SUBSCRIBE malformed (MQTT-4.7.1).
    """
    try:
        shared = parse_shared_subscription(topic_filter)
        match_filter = shared[1] if shared else topic_filter
        validate_topic_filter(match_filter)
    except TopicFilterInvalidError as error:
        if level != MQTT_5_0:
            raise MalformedPacketError(str(error)) from error
        return ReasonCode.TOPIC_FILTER_INVALID
    if shared:
        return shared[0], match_filter
    return None, match_filter


def handle_subscribe(protocol: MQTTServerProtocol, packet: Subscribe) -> None:
    """Check, authorize and apply a SUBSCRIBE; send SUBACK and retained messages."""
    broker = protocol.broker
    settings = broker.settings
    level = protocol.protocol_level
    identifiers = packet.properties.get(PropertyId.SUBSCRIPTION_IDENTIFIER)
    identifier = None
    if identifiers:
        if not settings.subscription_identifier_available:
            raise MQTTError(
                "Subscription Identifier sent",
                ReasonCode.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
            )
        identifier = identifiers[0]
    codes: list[int] = [0] * len(packet.subscriptions)
    pending: list[tuple[int, Subscription, Any]] = []
    for index, request in enumerate(packet.subscriptions):
        parts = _filter_parts(request.topic_filter, level)
        if isinstance(parts, int):
            codes[index] = parts
            continue
        share_name, match_filter = parts
        if share_name is not None:
            if request.no_local:
                # MQTT-3.8.3-4: No Local on a shared subscription.
                raise ProtocolError("No Local set on a shared subscription")
            if not settings.shared_subscription_available:
                codes[index] = ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED
                continue
        if not settings.wildcard_subscription_available and (
            "+" in match_filter or "#" in match_filter
        ):
            codes[index] = ReasonCode.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
            continue
        subscription = Subscription(
            request.topic_filter,
            match_filter,
            share_name,
            min(request.qos, settings.maximum_qos),
            request.no_local,
            request.retain_as_published,
            request.retain_handling,
            identifier,
        )
        decision = broker.authorizers.subscribe(
            protocol.identity, match_filter, request.qos
        )
        pending.append((index, subscription, decision))
    if level != MQTT_5_0:
        codes = [SUBACK_FAILURE if code >= 0x80 else code for code in codes]
    if any(isinstance(decision, Deferred) for _, _, decision in pending):
        protocol.pause()
        deferreds = [
            decision if isinstance(decision, Deferred) else _fired(decision)
            for _, _, decision in pending
        ]

        revalidations = broker.revalidations

        def decided(answers: list[bool]) -> None:
            session = protocol.session
            if session is not None:
                _apply(protocol, packet, codes, pending, answers)
                # A reload that ended while the decisions were pending did
                # not see these subscriptions, so check them under its rules.
                if broker.revalidations != revalidations:
                    broker.revalidate_session(session)
            protocol.resume()

        gatherResults(deferreds, consumeErrors=True).addCallback(decided)
        return
    _apply(protocol, packet, codes, pending, [decision for _, _, decision in pending])


def _fired(value: bool) -> Deferred[bool]:
    deferred: Deferred[bool] = Deferred()
    deferred.callback(value)
    return deferred


def _apply(
    protocol: MQTTServerProtocol,
    packet: Subscribe,
    codes: list[int],
    pending: list[tuple[int, Subscription, Any]],
    answers: list[bool],
) -> None:
    broker = protocol.broker
    session = protocol.session
    level = protocol.protocol_level
    added: list[tuple[Subscription, bool]] = []
    for (index, subscription, _), allowed in zip(pending, answers, strict=True):
        if not allowed:
            log.info(
                "SUBSCRIBE to {topic_filter} by {client_id} ({principal}) denied",
                topic_filter=subscription.topic_filter,
                client_id=protocol.client_id,
                principal=protocol.identity.principal if protocol.identity else None,
            )
            codes[index] = (
                ReasonCode.NOT_AUTHORIZED if level == MQTT_5_0 else SUBACK_FAILURE
            )
            continue
        existed = broker.add_subscription(session, subscription)  # type: ignore[arg-type]
        codes[index] = subscription.qos
        added.append((subscription, existed))
    if added and session.journaled:  # type: ignore[union-attr]
        broker.journal.put_session(session)  # type: ignore[arg-type]
    protocol.send_control(Suback(packet.packet_id, codes))
    for subscription, existed in added:
        if subscription.share_name is not None:
            continue
        if subscription.retain_handling == 2:
            continue
        if subscription.retain_handling == 1 and existed:
            continue
        send_retained(protocol, subscription)


def send_retained(protocol: MQTTServerProtocol, subscription: Subscription) -> None:
    """Deliver the retained messages that match a new subscription.

    Each topic is checked with the authorizer chain as a filter, so a
    wildcard subscription only gets the topics its identity may read.  They
    go out with RETAIN set (MQTT-3.3.1-8) in the order the checks allow.
    """
    broker = protocol.broker
    now = broker.reactor.seconds()
    expired = []
    for message in list(broker.retained.match(subscription.match_filter)):
        if message.expires_at is not None and message.expires_at <= now:
            expired.append(message.topic)
            continue
        decision = broker.authorizers.subscribe(
            protocol.identity, message.topic, subscription.qos
        )
        if isinstance(decision, Deferred):
            decision.addCallback(_deliver_retained, protocol, subscription, message)
        elif decision:
            _deliver_retained(True, protocol, subscription, message)
    for topic in expired:
        broker.retained.discard(topic)
        broker.journal.delete_retained(topic)


def _deliver_retained(
    allowed: bool,
    protocol: MQTTServerProtocol,
    subscription: Subscription,
    message: Any,
) -> None:
    session = protocol.session
    if not allowed or session is None:
        return
    qos = min(message.qos, subscription.qos)
    identifier = subscription.subscription_identifier
    session.deliver(message, qos, True, (identifier,) if identifier is not None else ())


def handle_unsubscribe(protocol: MQTTServerProtocol, packet: Unsubscribe) -> None:
    """Remove the named subscriptions and send UNSUBACK."""
    broker = protocol.broker
    session = protocol.session
    level = protocol.protocol_level
    codes = []
    removed = False
    for topic_filter in packet.topic_filters:
        parts = _filter_parts(topic_filter, level)
        if isinstance(parts, int):
            codes.append(parts)
            continue
        if broker.remove_subscription(session, topic_filter):  # type: ignore[arg-type]
            removed = True
            codes.append(ReasonCode.SUCCESS)
        else:
            codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
    if removed and session.journaled:  # type: ignore[union-attr]
        broker.journal.put_session(session)  # type: ignore[arg-type]
    protocol.send_control(Unsuback(packet.packet_id, codes))
