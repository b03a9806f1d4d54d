"""The broker's log observer: twistd's line format, levels, destinations."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from twisted.logger import (
    FileLogObserver,
    LogLevel,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python.failure import Failure

from mqttauth.service.logfile import ClassicLogFormatter, observer_for_twistd
from tests.support.process import (
    BrokerProcess,
    broker_environment,
    start_broker,
    twistd_command,
)

NOW = 1_764_860_000.25


class Client:
    """A value whose attributes and repr a log format can use."""

    name = "device-1"

    def __repr__(self) -> str:
        return "<Client device-1>"


def _event(log_format: object, **fields: object) -> dict[str, object]:
    event: dict[str, object] = {
        "log_format": log_format,
        "log_time": NOW,
        "log_namespace": "mqttauth.broker.authflow",
        "log_level": LogLevel.info,
    }
    event.update(fields)
    return event


def _failure() -> Failure:
    try:
        raise ValueError("boom")
    except ValueError:
        return Failure()


EVENTS = {
    "plain": _event("Connected {client_id} at {peer}", client_id="c1", peer="p"),
    "conversion and spec": _event("{value!r} 0x{code:02X}", value="a{b}", code=135),
    "attribute": _event("client {client.name}", client=Client()),
    "braces in a value": _event("id {client_id}", client_id="{x}"),
    "log_system": _event("started", log_system="MQTTServerFactory,0,127.0.0.1"),
    "no level": _event("no level", log_level=None),
    "no namespace": {"log_format": "bare", "log_time": NOW},
    "no time": _event("no time", log_time=None),
    "several lines": _event("first\nsecond\nthird"),
    "empty text": _event("   "),
    "no format": {"log_time": NOW, "log_level": LogLevel.info},
    "missing field": _event("value {missing}"),
    "call syntax": _event("{client.__repr__()}", client=Client()),
    "bytes format": _event(b"bytes {x}", x=1),
    "failure": _event("failed: {why}", why="x", log_failure=_failure()),
    "warn level": _event("careful", log_level=LogLevel.warn),
}


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_formatter_matches_twisted(name: str) -> None:
    event = EVENTS[name]
    expected = formatEventAsClassicLogText(event)
    assert ClassicLogFormatter()(event) == expected


def test_formatter_time_stamp_per_second() -> None:
    formatter = ClassicLogFormatter()
    for when in (NOW, NOW + 0.5, NOW + 1.0, NOW + 3600.9):
        assert formatter.format_time(when) == formatTime(when)


@pytest.mark.parametrize(
    ("minimum", "written"),
    [
        ("debug", {"debug", "info", "warn", "error", "critical"}),
        ("info", {"info", "warn", "error", "critical"}),
        ("warn", {"warn", "error", "critical"}),
        ("critical", {"critical"}),
    ],
)
def test_formatter_minimum_level(minimum: str, written: set[str]) -> None:
    formatter = ClassicLogFormatter(minimum)
    for level in (LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error):
        text = formatter(_event("x", log_level=level))
        assert (text is not None) == (level.name in written), level.name
    critical = formatter(_event("x", log_level=LogLevel.critical))
    assert critical is not None


def test_formatter_unknown_level_rejected() -> None:
    with pytest.raises(ValueError, match="verbose"):
        ClassicLogFormatter("verbose")


def test_observer_none_for_logger_and_syslog() -> None:
    assert observer_for_twistd({"logger": "some.factory", "nodaemon": True}) is None
    assert observer_for_twistd({"syslog": True, "nodaemon": True}) is None


def test_observer_none_for_daemon_on_stdout() -> None:
    # twistd itself exits with "Daemons cannot log to stdout".
    assert observer_for_twistd({"logfile": "-", "nodaemon": False}) is None


def test_observer_stdout_when_nodaemon() -> None:
    observer = observer_for_twistd({"nodaemon": True, "logfile": None})
    assert isinstance(observer, FileLogObserver)
    assert observer._outFile is sys.stdout


def test_observer_writes_logfile(tmp_path: Path) -> None:
    path = tmp_path / "broker.log"
    observer = observer_for_twistd({"nodaemon": False, "logfile": str(path)})
    assert observer is not None
    observer(_event("Connected {client_id}", client_id="c1"))
    observer(_event("hidden", log_level=LogLevel.debug))
    expected = f"{formatTime(NOW)} [mqttauth.broker.authflow#info] Connected c1\n"
    assert path.read_text() == expected


def _connect_once(port: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="log-probe")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.is_connected()
    finally:
        client.disconnect()
        client.loop_stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.e2e
def test_twistd_log_level_warn_hides_connects(tmp_path: Path) -> None:
    # The "Listening on" line that start_broker waits for is at level info,
    # so this test starts the process itself and waits for the port.
    port = _free_port()
    command = [
        *twistd_command(),
        "--pidfile=",
        "-n",
        "mqttauth",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
        "--authenticator",
        "anonymous",
        "--log-level",
        "warn",
    ]
    broker = BrokerProcess(command, broker_environment(), tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert broker.returncode is None, broker.log()
                assert time.monotonic() < deadline, broker.log()
                time.sleep(0.05)
        _connect_once(port)
    finally:
        broker.stop()
    log = broker.log()
    assert "anonymous authenticator lets every client in" in log
    assert "Listening on" not in log
    assert "log-probe" not in log


@pytest.mark.e2e
def test_twistd_default_log_shows_connects() -> None:
    with start_broker("--authenticator", "anonymous") as broker:
        offset = len(broker.log())
        _connect_once(broker.port)
        broker.wait_for_log(r"Disconnected log-probe at 127\.0\.0\.1:\d+", 10, offset)
        match = broker.wait_for_log(r".*Connected log-probe at .*", 10, offset)
        broker.stop()
    assert "[mqttauth.broker.authflow#info] Connected log-probe" in match.group()
