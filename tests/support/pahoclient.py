"""A blocking wrapper around a paho-mqtt 2.x client, for interoperability tests.

paho's network loop runs in its own thread (``loop_start``); every method
here blocks until the broker replied or a timeout passed, so call them from
a thread, not from the reactor thread (see ``tests.support.inprocess.in_thread``).
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

#: Seconds a blocking call waits for the broker.
TIMEOUT = 5.0

MQTTv311 = MQTTProtocolVersion.MQTTv311
MQTTv5 = MQTTProtocolVersion.MQTTv5


class PahoClient:
    """One paho-mqtt client with its received messages in a queue."""

    def __init__(
        self,
        port: int,
        client_id: str,
        protocol: MQTTProtocolVersion = MQTTv5,
        clean: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = port
        self.host = host
        self.protocol = protocol
        self.clean = clean
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=clean if protocol != MQTTv5 else None,
            reconnect_on_failure=False,
        )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack: tuple[Any, Any, Any] | None = None
        self.disconnect_reason: Any = None
        self._subacks: dict[int, Any] = {}
        self._subscribed = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connack = (flags, reason, properties)
        self.connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.disconnect_reason = reason
        self.disconnected.set()

    def _on_message(
        self, client: Any, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        self.messages.put(message)

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        with self._subscribed:
            self._subacks[mid] = reasons
            self._subscribed.notify_all()

    def set_will(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        self.client.will_set(topic, payload, qos, retain, properties)

    def connect(self, keepalive: int = 60, properties: Properties | None = None) -> Any:
        """Connect and wait for CONNACK; return paho's (flags, reason, properties)."""
        kwargs: dict[str, Any] = {"keepalive": keepalive}
        if self.protocol == MQTTv5:
            kwargs["clean_start"] = self.clean
            kwargs["properties"] = properties
        self.client.connect(self.host, self.port, **kwargs)
        self.client.loop_start()
        if not self.connected.wait(TIMEOUT):
            raise TimeoutError("no CONNACK")
        return self.connack

    def subscribe(self, topic: str, qos: int = 0, **options: Any) -> Any:
        """Subscribe and wait for SUBACK; return its reason codes."""
        if self.protocol == MQTTv5:
            properties = options.pop("properties", None)
            sub_options = mqtt.SubscribeOptions(qos=qos, **options)
            result, mid = self.client.subscribe(
                topic, options=sub_options, properties=properties
            )
        else:
            result, mid = self.client.subscribe(topic, qos)
        with self._subscribed:
            if not self._subscribed.wait_for(lambda: mid in self._subacks, TIMEOUT):
                raise TimeoutError(f"no SUBACK for {topic}")
            return self._subacks.pop(mid)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Publish and, for QoS 1 and 2, wait until the flow completes."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(TIMEOUT)
        if not info.is_published():
            raise TimeoutError(f"PUBLISH to {topic} not acknowledged")

    def next_message(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        """Return the next message received; raise queue.Empty after ``timeout``."""
        return self.messages.get(timeout=timeout)

    def no_message(self, timeout: float = 0.5) -> bool:
        """Return True when no message arrives within ``timeout`` seconds."""
        try:
            self.messages.get(timeout=timeout)
        except queue.Empty:
            return True
        return False

    def disconnect(self) -> None:
        """Send DISCONNECT and stop the network loop."""
        self.client.disconnect()
        self.disconnected.wait(TIMEOUT)
        self.client.loop_stop()

    def drop(self) -> None:
        """Close the socket without DISCONNECT, as a crashed client would."""
        sock = self.client.socket()
        self.client.loop_stop()
        if sock is not None:
            sock.close()


def connect_properties(**values: Any) -> Properties:
    """Return CONNECT properties, e.g. ``SessionExpiryInterval=60``."""
    properties = Properties(PacketTypes.CONNECT)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


def publish_properties(**values: Any) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


def will_properties(**values: Any) -> Properties:
    properties = Properties(PacketTypes.WILLMESSAGE)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties
