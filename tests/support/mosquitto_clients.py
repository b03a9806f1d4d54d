"""Run Debian's ``mosquitto_pub`` and ``mosquitto_sub`` against a test broker.

:func:`mosquitto_pub` runs one publish to completion.  :class:`MosquittoSub`
starts a subscriber with ``-d`` (debug output), so the test can wait for the
CONNACK and the SUBACK before it publishes, and read the granted QoS or the
failure code of each subscription:

    with MosquittoSub(["-h", "127.0.0.1", "-p", str(port), "-t", "t/#", "-v"]) as sub:
        sub.wait_subscribed()
        mosquitto_pub(["-h", "127.0.0.1", "-p", str(port), "-t", "t/a", "-m", "hi"])
        assert sub.wait_message() == "t/a hi"

Both take the client's arguments as a list, exactly as on a command line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from types import TracebackType

_DEBUG_LINE = re.compile(r"^(Client \S+ (sending|received) |Subscribed \(mid: )")
_SUBSCRIBED = re.compile(r"^Subscribed \(mid: \d+\): (?P<codes>[\d, ]+)$")
_CONNACK = re.compile(r"^Client \S+ received CONNACK \((?P<code>\d+)\)")


def mosquitto_pub(
    args: Sequence[str], timeout: float = 15.0
) -> subprocess.CompletedProcess[str]:
    """Run ``mosquitto_pub ARGS`` and return the finished process (output as text)."""
    command = (
        list(args) if args and args[0] == "mosquitto_pub" else ["mosquitto_pub", *args]
    )
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class MosquittoSub:
    """A running ``mosquitto_sub -d ARGS``; its output lines are kept in ``lines``."""

    def __init__(self, args: Sequence[str]) -> None:
        command = (
            list(args)
            if args and args[0] == "mosquitto_sub"
            else ["mosquitto_sub", *args]
        )
        if "-d" not in command:
            command.append("-d")
        self.command = command
        self.lines: list[str] = []
        # mosquitto_sub writes its debug lines through stdio, which buffers
        # them in full on a pipe; stdbuf makes it flush every line.
        launcher = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            launcher + command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._messages_seen = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def _snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def wait_line(
        self, pattern: re.Pattern[str], timeout: float = 15.0
    ) -> re.Match[str]:
        """Return the first output line that matches ``pattern`` within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self._snapshot():
                match = pattern.search(line)
                if match is not None:
                    return match
            exited = self.process.poll() is not None and not self._reader.is_alive()
            if exited or time.monotonic() > deadline:
                raise AssertionError(
                    f"mosquitto_sub printed no line matching {pattern.pattern!r}: "
                    f"{self.command}\n" + "\n".join(self._snapshot())
                )
            time.sleep(0.02)

    def wait_connack(self, timeout: float = 15.0) -> int:
        """Return the CONNACK code (3.1.1 return code or 5.0 reason code)."""
        return int(self.wait_line(_CONNACK, timeout)["code"])

    def wait_subscribed(self, timeout: float = 15.0) -> list[int]:
        """Return the SUBACK codes: the granted QoS, or 128 (3.1.1) or 135 if denied."""
        codes = self.wait_line(_SUBSCRIBED, timeout)["codes"]
        return [int(code) for code in codes.split(",")]

    def messages(self) -> list[str]:
        """Return the output lines that are messages (``-v``: ``topic payload``)."""
        return [line for line in self._snapshot() if not _DEBUG_LINE.match(line)]

    def wait_message(self, timeout: float = 15.0) -> str:
        """Return the next message line not returned before."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages()
            if len(messages) > self._messages_seen:
                self._messages_seen += 1
                return messages[self._messages_seen - 1]
            if time.monotonic() > deadline or (
                self.process.poll() is not None and not self._reader.is_alive()
            ):
                raise AssertionError(
                    f"mosquitto_sub received no message: {self.command}\n"
                    + "\n".join(self._snapshot())
                )
            time.sleep(0.02)

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for the subscriber to exit on its own and return its status."""
        status = self.process.wait(timeout)
        self._reader.join(5)
        return status

    def stop(self) -> None:
        """Stop the subscriber (SIGTERM, then SIGKILL) if it still runs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> MosquittoSub:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
