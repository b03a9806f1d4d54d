"""Drive an MQTT 5.0 session of mqtt.js (``tests/js/mqtt_session.mjs``) from a test.

mqtt.js is the real client here that can re-authenticate: the script sends
AUTH 0x19 on request and reports every CONNACK, AUTH, SUBACK, acknowledgement,
message and DISCONNECT as a JSON event.  See the script's header for the
configuration, the commands and the events.

    with MQTTJSSession(host, port, client_id="c1", method="JWT", token=t) as session:
        session.wait_for("connack")
        session.send(op="reauth", token=new_token)
        event = session.wait_for("auth")
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "mqtt_session.mjs"


class MQTTJSSession:
    """A running ``mqtt_session.mjs``; every event it reports is kept in ``events``."""

    def __init__(self, host: str, port: int, **config: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.process = subprocess.Popen(
            ["node", str(SCRIPT), json.dumps({"host": host, "port": port, **config})],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._consumed: set[int] = set()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def send(self, **command: Any) -> None:
        """Send one command: ``op`` is subscribe, publish, reauth or end."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def wait_for(
        self, event: str, timeout: float = 15.0, **fields: Any
    ) -> dict[str, Any]:
        """Return the next unseen event named ``event`` whose ``fields`` match.

        Each event is returned once, so two waits for ``"message"`` return two
        different messages, in the order they arrived.  Raises AssertionError
        with every event so far when the deadline passes or the script exits
        first.
        """
        deadline = time.monotonic() + timeout
        while True:
            for index, candidate in enumerate(self.events):
                if index in self._consumed or candidate["event"] != event:
                    continue
                if all(candidate.get(key) == value for key, value in fields.items()):
                    self._consumed.add(index)
                    return candidate
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {event!r} event {fields} in {self.events}")
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if item is None:
                self._queue.put(None)
                stderr = self.process.stderr.read() if self.process.stderr else ""
                raise AssertionError(
                    f"mqtt_session.mjs exited before a {event!r} event {fields}: "
                    f"{self.events}\n{stderr}"
                )
            self.events.append(item)

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Collect events for ``seconds`` and return those not seen before."""
        start = len(self.events)
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            self.events.append(item)
        return self.events[start:]

    def close(self) -> None:
        """End the script: close its standard input, then kill it if it lingers."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> MQTTJSSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
