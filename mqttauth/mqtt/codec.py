"""The MQTT wire codec: an incremental decoder and the packet encoders.

The decoder works like h11: the connection feeds it bytes as they arrive,
split anywhere, and pulls whole packets out. It never does I/O and never
logs. Bad input raises a subclass of :class:`MQTTError` that carries the
MQTT 5.0 reason code for the reply, and the connection must then be closed.
"""

from .constants import MQTT_3_1_1, MQTT_5_0, PacketType
from .decoding import DECODERS, FIXED_FLAGS, decode_connect
from .encoding import encode, encode_publish
from .errors import MalformedPacketError, MQTTError, PacketTooLargeError, ProtocolError
from .packets import Packet, Puback, Publish
from .properties import decode_properties, encode_properties

#: The largest packet MQTT can express: 1 + 4 + 268,435,455 bytes.
MAX_PACKET_SIZE_LIMIT = 268_435_460

_CONNECT = PacketType.CONNECT

#: For each first byte of a valid PUBLISH fixed header: QoS, RETAIN and DUP.
#: None for every other first byte (other packet types, QoS 3, DUP on QoS 0),
#: which the fast path leaves to the full decoder.
_PUBLISH_FLAGS: tuple[tuple[int, bool, bool] | None, ...] = tuple(
    (
        ((first >> 1) & 3, bool(first & 1), bool(first & 8))
        if first >> 4 == PacketType.PUBLISH
        and (first >> 1) & 3 != 3
        and not (first & 8 and not (first >> 1) & 3)
        else None
    )
    for first in range(256)
)


class Decoder:
    """Incremental decoder for one connection: feed bytes, pull packets.

    ``protocol_level`` is None on a server until a CONNECT is decoded; from
    then on the CONNECT's level (4 or 5) decodes every later packet. A client
    creates its decoder with the level it connected with. Before the level is
    known, only a CONNECT is accepted.

    ``max_packet_size`` bounds the whole packet, fixed header included. It is
    checked as soon as the fixed header is complete, before the body is
    buffered, so a peer cannot make the decoder hold more than that.

    Buffering is linear in the bytes fed: whole packets are sliced out of the
    fed chunk without copying the chunk, and a partial packet waits in a list
    of chunks that is joined once, when the packet is complete.
    """

    __slots__ = (
        "max_packet_size",
        "protocol_level",
        "_buffer",
        "_offset",
        "_pending",
        "_pending_size",
        "_error",
    )

    def __init__(
        self,
        max_packet_size: int = MAX_PACKET_SIZE_LIMIT,
        protocol_level: int | None = None,
    ) -> None:
        self.max_packet_size = max_packet_size
        self.protocol_level = protocol_level
        self._buffer = b""
        self._offset = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._error: MQTTError | None = None

    def feed(self, data: bytes) -> None:
        """Append ``data`` to the bytes waiting to be decoded."""
        if not data:
            return
        if self._offset >= len(self._buffer) and not self._pending:
            self._buffer = bytes(data)
            self._offset = 0
        else:
            self._pending.append(bytes(data))
            self._pending_size += len(data)

    def next_packet(self) -> Packet | None:
        """Return the next complete packet, or None until more bytes arrive.

        Raises an MQTTError subclass for bad input, and the same error again
        on every later call, because the stream cannot be resynchronized.
        """
        if self._error is not None:
            raise self._error
        # Fast path for the common case: a whole PUBLISH without properties,
        # or a bare PUBACK, with a Remaining Length of one or two bytes. What
        # the fast path is not sure of (an empty topic, properties, a bad
        # value) goes to the full decoder, which decodes the packet again and
        # raises if it must.
        buffer = self._buffer
        offset = self._offset
        start = offset + 2
        if start <= len(buffer) and self.protocol_level is not None:
            first = buffer[offset]
            length = buffer[offset + 1]
            if length & 0x80:
                if start < len(buffer) and 0 < buffer[start] < 0x80:
                    length = (length & 0x7F) | (buffer[start] << 7)
                    start += 1
                else:
                    length = -1
            end = start + length
            if (
                length >= 0
                and end <= len(buffer)
                and end - offset <= self.max_packet_size
            ):
                flags = _PUBLISH_FLAGS[first]
                if flags is not None:
                    publish = self._decode_short_publish(buffer, start, end, flags)
                    if publish is not None:
                        self._offset = end
                        return publish
                elif first == 0x40 and end == start + 2:
                    packet_id = (buffer[start] << 8) | buffer[start + 1]
                    if packet_id:
                        self._offset = end
                        return Puback(packet_id)
        try:
            return self._decode_next()
        except MQTTError as error:
            self._error = error
            raise

    def _decode_short_publish(
        self, buffer: bytes, start: int, end: int, flags: tuple[int, bool, bool]
    ) -> Publish | None:
        """Decode a PUBLISH body without properties, or return None.

        None means "not the common case": the full decoder then decides.
        """
        if end - start < 2:
            return None
        stop = start + 2 + ((buffer[start] << 8) | buffer[start + 1])
        if stop > end or stop == start + 2:
            return None
        try:
            topic = buffer[start + 2 : stop].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if "+" in topic or "#" in topic or "\x00" in topic:
            return None
        qos, retain, dup = flags
        packet_id = None
        if qos:
            if stop + 2 > end:
                return None
            packet_id = (buffer[stop] << 8) | buffer[stop + 1]
            if not packet_id:
                return None
            stop += 2
        if self.protocol_level == MQTT_5_0:
            if stop >= end or buffer[stop]:
                return None
            stop += 1
        return Publish(topic, buffer[stop:end], qos, retain, dup, packet_id, {})

    def _merge_pending(self) -> None:
        """Join the unread rest of the buffer and the pending chunks."""
        self._pending.insert(0, self._buffer[self._offset :])
        self._buffer = b"".join(self._pending)
        self._offset = 0
        self._pending.clear()
        self._pending_size = 0

    def _decode_next(self) -> Packet | None:
        while True:
            buffer = self._buffer
            offset = self._offset
            available = len(buffer) - offset
            header = self._read_fixed_header(buffer, offset, available)
            if header is None:
                if self._pending:
                    self._merge_pending()
                    continue
                return None
            header_size, remaining_length, minimal = header
            total = header_size + remaining_length
            if total > available:
                if self._pending and available + self._pending_size >= total:
                    self._merge_pending()
                    continue
                return None
            start = offset + header_size
            end = start + remaining_length
            self._offset = end
            return self._decode_body(buffer[offset], buffer, start, end, minimal)

    def _read_fixed_header(
        self, buffer: bytes, offset: int, available: int
    ) -> tuple[int, int, bool] | None:
        """Parse the fixed header at ``offset`` and check it.

        Return the header size, the Remaining Length and whether that was in
        its minimal encoding, or None when the header is not complete yet.
        """
        if available < 2:
            if available == 1:
                self._check_first_byte(buffer[offset])
            return None
        first = buffer[offset]
        self._check_first_byte(first)
        remaining_length = 0
        shift = 0
        for index in range(offset + 1, offset + min(available, 5)):
            byte = buffer[index]
            remaining_length |= (byte & 0x7F) << shift
            if byte < 0x80:
                header_size = index - offset + 1
                minimal = byte != 0 or header_size == 2
                if not minimal and self.protocol_level == MQTT_5_0:
                    raise MalformedPacketError(
                        "Remaining Length not in its minimal encoding"
                    )
                if header_size + remaining_length > self.max_packet_size:
                    raise PacketTooLargeError(
                        f"packet of {header_size + remaining_length} bytes exceeds"
                        f" the maximum packet size {self.max_packet_size}"
                    )
                return header_size, remaining_length, minimal
            shift += 7
            if shift == 28:
                raise MalformedPacketError("Remaining Length longer than four bytes")
        return None

    def _check_first_byte(self, first: int) -> None:
        packet_type = first >> 4
        level = self.protocol_level
        if level is None and packet_type != _CONNECT:
            raise ProtocolError("the first packet must be a CONNECT")
        if packet_type == PacketType.PUBLISH:
            return
        expected = FIXED_FLAGS.get(packet_type)
        if expected is None or (packet_type == PacketType.AUTH and level == MQTT_3_1_1):
            raise MalformedPacketError(f"reserved packet type {packet_type}")
        if first & 0x0F != expected:
            raise MalformedPacketError(
                f"{PacketType(packet_type).name} with invalid fixed header flags"
                f" 0x{first & 0x0F:X}"
            )

    def _decode_body(
        self, first: int, buffer: bytes, start: int, end: int, minimal: bool
    ) -> Packet:
        packet_type = first >> 4
        level = self.protocol_level
        if packet_type == _CONNECT:
            connect = decode_connect(first & 0x0F, buffer, start, end, MQTT_5_0)
            if not minimal and connect.protocol_level == MQTT_5_0:
                raise MalformedPacketError(
                    "Remaining Length not in its minimal encoding"
                )
            if level is None:
                self.protocol_level = connect.protocol_level
            return connect
        assert level is not None
        return DECODERS[packet_type](first & 0x0F, buffer, start, end, level)


__all__ = [
    "MAX_PACKET_SIZE_LIMIT",
    "Decoder",
    "decode_properties",
    "encode",
    "encode_properties",
    "encode_publish",
]
