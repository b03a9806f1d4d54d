"""``twistd mqttauth`` as operators run it: start-up, settings, logs, shutdown."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.support.pahoclient import MQTTv5, PahoClient
from tests.support.process import run_twistd, start_broker

pytestmark = pytest.mark.e2e


def connack_maximum_packet_size(port: int) -> int:
    client = PahoClient(port, "probe", MQTTv5)
    _, reason, properties = client.connect()
    client.disconnect()
    assert not reason.is_failure
    return properties.MaximumPacketSize


def test_anonymous_broker_round_trip() -> None:
    with start_broker("--authenticator", "anonymous") as broker:
        subscriber = PahoClient(broker.port, "sub", MQTTv5)
        subscriber.connect()
        subscriber.subscribe("t/#", qos=1)
        publisher = PahoClient(broker.port, "pub", MQTTv5)
        publisher.connect()
        publisher.publish("t/a", b"hello", qos=1)
        message = subscriber.next_message()
        publisher.disconnect()
        subscriber.disconnect()
    assert (message.topic, message.payload) == ("t/a", b"hello")


def test_sigterm_stops_gracefully() -> None:
    broker = start_broker("--authenticator", "anonymous")
    status = broker.stop()
    # twistd ends by re-raising the signal that stopped it.
    assert status == -signal.SIGTERM
    assert "mqttauth stopped" in broker.log()


def test_startup_log_lists_listeners_plugins_settings() -> None:
    with start_broker(
        "--authenticator",
        "anonymous",
        "--max-inflight",
        "17",
        listen=("tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1"),
    ) as broker:
        log = broker.log()
    assert (
        len(
            re.findall(
                r"Listening on tcp:0:interface=127.0.0.1 at 127.0.0.1:\d+ \(plain\)",
                log,
            )
        )
        == 2
    )
    assert "Authenticator: anonymous; authorizer chain: allow-all" in log
    assert "Setting max-inflight = 17 (from command line)" in log
    assert "Store: in memory" in log
    assert "TLS: minimum version 1.2" in log


def test_startup_log_hides_secrets() -> None:
    secret = "do-not-log-this-hmac-secret-0123456789abcdef"
    with start_broker(
        "--authenticator", "anonymous", env={"JWT_VERIFICATION_KEY": secret}
    ) as broker:
        log = broker.log()
    assert "Setting jwt-verification-key = <hidden> (from environment)" in log
    assert secret not in log


def test_unknown_environment_variable_logged() -> None:
    with start_broker(
        "--authenticator", "anonymous", env={"MQTTAUTH_MAX_CONECTIONS": "3"}
    ) as broker:
        log = broker.log()
    assert "Environment variable MQTTAUTH_MAX_CONECTIONS names no setting" in log


def test_config_file_sets_everything(tmp_path: Path) -> None:
    config = tmp_path / "mqttauth.toml"
    config.write_text(
        'listen = ["tcp:0:interface=127.0.0.1"]\n'
        'authenticator = "anonymous"\n'
        'authorizer = ["allow-all"]\n'
        "max-packet-size = 5000\n"
    )
    with start_broker("--config", str(config), listen=()) as broker:
        size = connack_maximum_packet_size(broker.port)
        log = broker.log()
    assert size == 5000
    assert f"Config file: {config}" in log


@pytest.mark.parametrize(
    ("command_line", "environment", "expected"),
    [
        (("--max-packet-size", "7000"), {"MQTTAUTH_MAX_PACKET_SIZE": "6000"}, 7000),
        ((), {"MQTTAUTH_MAX_PACKET_SIZE": "6000"}, 6000),
        ((), {}, 5000),
    ],
)
def test_precedence_reaches_broker(
    tmp_path: Path,
    command_line: tuple[str, ...],
    environment: dict[str, str],
    expected: int,
) -> None:
    config = tmp_path / "mqttauth.toml"
    config.write_text('authenticator = "anonymous"\nmax-packet-size = 5000\n')
    with start_broker(
        "--config", str(config), *command_line, env=environment
    ) as broker:
        assert connack_maximum_packet_size(broker.port) == expected


def test_help_lists_plugin_options() -> None:
    result = run_twistd("--help")
    assert result.returncode == 0
    for option in (
        "--listen=",
        "--max-connections=",
        "--jwt-jwks-url=",
        "--password-file=",
    ):
        assert option in result.stdout
    assert "[env: JWT_JWKS_URL]" in result.stdout


def test_help_plugins_lists_builtins() -> None:
    result = run_twistd("--help-plugins")
    assert result.returncode == 0
    for name in ("anonymous", "password-file", "jwt", "allow-all", "acl-file"):
        assert re.search(rf"^  {re.escape(name)} ", result.stdout, re.MULTILINE), name
