"""A raw-packet MQTT client over a real socket, for byte-level protocol tests.

It is blocking and needs no reactor, so it works as it is against a broker
in a subprocess.  Against an in-process broker, run it in a thread (see
:func:`tests.support.inprocess.in_thread`).  Packets are encoded and decoded
with the project's codec; :meth:`RawClient.send_raw` and
:meth:`RawClient.receive_bytes` bypass it for malformed input and exact
reply bytes.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from mqttauth.mqtt.codec import Decoder, encode
from mqttauth.mqtt.constants import MQTT_5_0
from mqttauth.mqtt.packets import Connack, Connect, Packet

#: Default seconds a receive waits.
DEFAULT_TIMEOUT = 5.0


class ConnectionClosedError(Exception):
    """The server closed the connection while a packet was expected."""


class RawClient:
    """One TCP connection to a broker that sends and receives whole packets."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        protocol_level: int = MQTT_5_0,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.protocol_level = protocol_level
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = Decoder(protocol_level=protocol_level)
        #: Bytes received but not yet returned by receive_bytes.
        self._raw = b""
        self.closed = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket (no DISCONNECT is sent)."""
        self.sock.close()

    # -- sending -----------------------------------------------------------------

    def send(self, packet: Packet) -> None:
        """Encode ``packet`` at this client's protocol level and send it."""
        self.sock.sendall(encode(packet, self.protocol_level))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connect(
        self,
        client_id: str = "",
        clean_start: bool = True,
        keep_alive: int = 60,
        **fields: Any,
    ) -> Connack:
        """Send a CONNECT and return the CONNACK (raises if another packet comes)."""
        self.send(
            Connect(
                client_id,
                protocol_level=self.protocol_level,
                clean_start=clean_start,
                keep_alive=keep_alive,
                **fields,
            )
        )
        packet = self.receive()
        if not isinstance(packet, Connack):
            raise AssertionError(f"expected CONNACK, received {packet!r}")
        return packet

    # -- receiving ---------------------------------------------------------------

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError as error:
            raise TimeoutError("no data from the server in time") from error
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
        return data

    def receive(self, timeout: float | None = None) -> Packet:
        """Return the next packet; raise TimeoutError or ConnectionClosedError."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if self._raw:
                self.decoder.feed(self._raw)
                self._raw = b""
            packet = self.decoder.next_packet()
            if packet is not None:
                return packet
            if self.closed:
                raise ConnectionClosedError("the server closed the connection")
            data = self._recv(deadline)
            if not data:
                raise ConnectionClosedError("the server closed the connection")
            self.decoder.feed(data)

    def receive_bytes(self, count: int, timeout: float | None = None) -> bytes:
        """Return exactly ``count`` raw bytes, bypassing the decoder.

        Use it instead of :meth:`receive`, not between packets it has
        partly decoded.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self._raw) < count:
            if self.closed:
                raise ConnectionClosedError(f"closed after {self._raw!r}")
            data = self._recv(deadline)
            if not data:
                raise ConnectionClosedError(f"closed after {self._raw!r}")
            self._raw += data
        data, self._raw = self._raw[:count], self._raw[count:]
        return data

    def expect_closed(self, timeout: float | None = None) -> bytes:
        """Wait until the server closes the connection; return any bytes read first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        received = self._raw
        self._raw = b""
        while not self.closed:
            received += self._recv(deadline)
        return received

    def expect_silence(self, seconds: float) -> None:
        """Raise AssertionError if a packet or a close arrives within ``seconds``."""
        try:
            packet = self.receive(timeout=seconds)
        except TimeoutError:
            return
        except ConnectionClosedError as error:
            raise AssertionError("the server closed the connection") from error
        raise AssertionError(f"expected no packet, received {packet!r}")
