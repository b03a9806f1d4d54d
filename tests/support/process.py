"""Run ``twistd mqttauth`` as a subprocess for end-to-end tests.

Start a broker, talk to it, stop it::

    from tests.support.process import start_broker

    with start_broker("--authenticator", "anonymous") as broker:
        client.connect("127.0.0.1", broker.port)
        ...
    # leaving the block stops the broker (SIGTERM, then SIGKILL)

:func:`start_broker` runs ``twistd --pidfile= -n mqttauth --listen L ... OPTIONS``
with ``L`` defaulting to ``tcp:0:interface=127.0.0.1``: the kernel picks a
free loopback port, so brokers of concurrent test runs never collide, and
the helper reads the port from the broker's log line ``Listening on
ENDPOINT at HOST:PORT``.  It returns once every listener has logged that and
the broker logged ``mqttauth started``, or raises :class:`BrokerStartError`
with the log when the process exits first or the deadline passes.

Arguments of :func:`start_broker` (all keyword-only except ``options``):

- ``options``: the mqttauth options after ``mqttauth``, such as
  ``"--authenticator", "anonymous"``.
- ``listen``: endpoint strings, each passed as ``--listen``; ``()`` passes
  none, for options that come from a config file or the environment.
- ``env``: variables to set on top of the test process's environment, from
  which every ``MQTTAUTH_*`` and ``JWT_*`` variable is removed first, so the
  developer's shell cannot change a test.
- ``pythonpath``: folders put in front of the repository root on
  ``PYTHONPATH`` (a folder holding ``twisted/plugins/x.py`` adds a plugin).
- ``cwd``: working directory (default: a new temporary folder).
- ``timeout``: seconds to wait for start-up (default 30).

:class:`BrokerProcess` has:

- ``pid``, and ``addresses``: ``(host, port)`` per listener, in ``--listen``
  order; ``port`` is the first listener's.
- ``log_path``, and ``log()``: everything the process wrote to standard
  output and error so far.
- ``wait_for_log(pattern, timeout, after=0)``: poll the log for a regular
  expression in the text after offset ``after`` (take it from
  ``len(log())`` before the action whose log line you wait for).
- ``send_signal(sig)``, for example ``signal.SIGHUP``.
- ``stop(timeout)``: SIGTERM, wait, SIGKILL if needed; returns the exit
  status, which is ``-signal.SIGTERM`` after a graceful stop because twistd
  re-raises the signal that stopped it.
- ``kill()``: SIGKILL, for crash tests.

Signals go to the pid this helper started and to nothing else.

:func:`run_twistd` runs ``twistd --pidfile= -n mqttauth OPTIONS`` to the
end (for start-up errors) and returns a ``subprocess.CompletedProcess``
whose ``stdout`` holds standard output and error together; it kills the
broker and fails the test if it is still running after ``timeout``.

The subprocess imports ``mqttauth`` from this repository (its root is put on
``PYTHONPATH``), whether or not the package is also installed.  Twisted
then also finds the repository's ``twisted/plugins`` folder, but a plugin
module that is installed in ``site-packages`` too is loaded from there,
because ``site-packages/twisted/plugins`` comes first in the plugin path.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_LISTEN = ("tcp:0:interface=127.0.0.1",)

_LISTENING = re.compile(
    r"Listening on (?P<endpoint>\S+) at (?P<host>\S+):(?P<port>\d+) \("
)
_STARTED = re.compile(r"mqttauth started with ")

#: Brokers still running, stopped at interpreter exit if a test leaked one.
_RUNNING: set[BrokerProcess] = set()


class BrokerStartError(AssertionError):
    """The broker exited or did not finish starting in time; carries its log."""


def twistd_command() -> list[str]:
    """Return the command that runs twistd with the test's own interpreter."""
    script = Path(sys.executable).parent / "twistd"
    if script.exists():
        return [sys.executable, str(script)]
    found = shutil.which("twistd")
    if found is not None:
        return [found]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def broker_environment(
    env: Mapping[str, str] | None = None,
    pythonpath: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, str]:
    """Return the environment for a broker subprocess; see the module docstring."""
    result = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MQTTAUTH_", "JWT_"))
    }
    paths = [str(path) for path in pythonpath] + [str(REPOSITORY)]
    if result.get("PYTHONPATH"):
        paths.append(result["PYTHONPATH"])
    result["PYTHONPATH"] = os.pathsep.join(paths)
    result["PYTHONUNBUFFERED"] = "1"
    result.update(env or {})
    return result


class BrokerProcess:
    """A running ``twistd mqttauth`` subprocess; see the module docstring."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.log_path = cwd / "broker.log"
        self.addresses: list[tuple[str, int]] = []
        self._log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        _RUNNING.add(self)

    @property
    def port(self) -> int:
        """Return the port of the first listener."""
        return self.addresses[0][1]

    @property
    def returncode(self) -> int | None:
        """Return the exit status, or None while the process runs."""
        return self.process.poll()

    def log(self) -> str:
        """Return everything the broker wrote so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(
        self, pattern: str | re.Pattern[str], timeout: float = 15.0, after: int = 0
    ) -> re.Match[str]:
        """Poll the log until ``pattern`` matches text after offset ``after``.

        Raises :class:`AssertionError` with the log when the deadline passes
        or the process exits without the pattern appearing.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            exited = self.process.poll() is not None
            match = regex.search(self.log(), after)
            if match is not None:
                return match
            if exited:
                raise AssertionError(
                    f"broker exited ({self.process.returncode}) before logging "
                    f"{regex.pattern!r}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"broker did not log {regex.pattern!r} within {timeout} s:\n"
                    f"{self.log()}"
                )
            time.sleep(0.05)

    def _wait_started(self, listeners: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if self.process.poll() is not None:
                raise BrokerStartError(
                    f"broker exited with status {self.process.returncode} while "
                    f"starting: {' '.join(self.args)}\n{text}"
                )
            found = [
                (m["host"].strip("[]"), int(m["port"]))
                for m in _LISTENING.finditer(text)
            ]
            if _STARTED.search(text) and len(found) >= listeners:
                self.addresses = found
                return
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerStartError(
                    f"broker did not start within {timeout} s: "
                    f"{' '.join(self.args)}\n{text}"
                )
            time.sleep(0.05)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the broker process."""
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        """Send SIGTERM (SIGKILL after ``timeout``) and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()
        return self.process.returncode

    def kill(self) -> int:
        """Kill the broker with SIGKILL, as a crash would; return its status."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._close()
        return self.process.returncode

    def _close(self) -> None:
        self._log_file.close()
        _RUNNING.discard(self)

    def __enter__(self) -> BrokerProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _command(options: Sequence[str], listen: Sequence[str]) -> list[str]:
    command = [*twistd_command(), "--pidfile=", "-n", "mqttauth"]
    for description in listen:
        command += ["--listen", description]
    return command + list(options)


def start_broker(
    *options: str,
    listen: Sequence[str] = DEFAULT_LISTEN,
    env: Mapping[str, str] | None = None,
    pythonpath: Sequence[str | os.PathLike[str]] = (),
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
) -> BrokerProcess:
    """Start a broker and wait until it listens; see the module docstring."""
    folder = (
        Path(cwd) if cwd is not None else Path(tempfile.mkdtemp(prefix="mqttauth-"))
    )
    broker = BrokerProcess(
        _command(options, listen), broker_environment(env, pythonpath), folder
    )
    try:
        broker._wait_started(max(len(listen), 1), timeout)
    except BaseException:
        broker.stop()
        raise
    return broker


def run_twistd(
    *options: str,
    env: Mapping[str, str] | None = None,
    pythonpath: Sequence[str | os.PathLike[str]] = (),
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``twistd --pidfile= -n mqttauth OPTIONS`` until it exits."""
    folder = (
        Path(cwd) if cwd is not None else Path(tempfile.mkdtemp(prefix="mqttauth-"))
    )
    try:
        return subprocess.run(
            _command(options, ()),
            cwd=folder,
            env=broker_environment(env, pythonpath),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"twistd mqttauth {' '.join(options)} still ran after {timeout} s:\n"
            f"{error.stdout!r}"
        ) from None


@atexit.register
def _stop_leaked_brokers() -> None:
    for broker in list(_RUNNING):
        broker.kill()
