"""``twistd -n mqttauth --dev``: one command gives a broker that the printed
mosquitto command lines talk to."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqttauth import tokens
from tests.support.mosquitto_clients import MosquittoSub, mosquitto_pub
from tests.support.process import REPOSITORY, BrokerProcess, run_twistd, start_broker

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_dev_broker(data_dir: Path, *options: str) -> BrokerProcess:
    """Start a development broker on a free port, retrying if another takes it."""
    for _ in range(5):
        port = free_port()
        listen = f"tcp:{port}:interface=127.0.0.1"
        try:
            return start_broker(
                "--dev", "--data-dir", str(data_dir), *options, listen=[listen]
            )
        except AssertionError as error:
            if "Address already in use" not in str(error):
                raise
    raise AssertionError("no free port for the development broker after 5 tries")


def printed_commands(log: str) -> dict[str, list[str]]:
    """Return the mosquitto command lines of the banner, split as a shell would."""
    commands = {}
    for line in log.splitlines():
        if line.startswith(("mosquitto_sub ", "mosquitto_pub ")):
            words = shlex.split(line)
            commands[words[0]] = words
    return commands


@pytest.fixture
def dev_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = start_dev_broker(tmp_path / "dev-data")
    try:
        broker.wait_for_log(r"mosquitto_pub ")
        yield broker
    finally:
        broker.stop()


def test_dev_banner_warns(dev_broker: BrokerProcess) -> None:
    assert "DEVELOPMENT MODE" in dev_broker.log()


def test_dev_prints_both_commands(dev_broker: BrokerProcess) -> None:
    assert sorted(printed_commands(dev_broker.log())) == [
        "mosquitto_pub",
        "mosquitto_sub",
    ]


def test_dev_printed_commands_deliver(dev_broker: BrokerProcess) -> None:
    commands = printed_commands(dev_broker.log())
    # Run the printed lines as they are; -C 1 -W 30 only make the
    # subscriber exit after one message instead of running forever.
    with MosquittoSub(
        [*commands["mosquitto_sub"], "-C", "1", "-W", "30"]
    ) as subscriber:
        assert subscriber.wait_connack() == 0
        assert subscriber.wait_subscribed() == [0]
        published = mosquitto_pub(commands["mosquitto_pub"])
        assert published.returncode == 0, published.stderr
        assert subscriber.wait_message() == "dev/hello hello from mqttauth"
        assert subscriber.wait_exit() == 0


def test_dev_token_command_accepted(dev_broker: BrokerProcess, tmp_path: Path) -> None:
    command = ["token", "--data-dir", str(tmp_path / "dev-data"), "--sub", "device-1"]
    command += ["--groups", "sensors", "--ttl", "3600"]
    token = subprocess.run(
        [sys.executable, "-m", "mqttauth", *command],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    server = ["-h", "127.0.0.1", "-p", str(dev_broker.port), "-u", "JWT", "-P", token]
    with MosquittoSub([*server, "-t", "devices/device-1/#", "-v", "-C", "1"]) as own:
        assert own.wait_subscribed() == [0]
        published = mosquitto_pub(
            [*server, "-t", "devices/device-1/temp", "-m", "21.5"]
        )
        assert published.returncode == 0, published.stderr
        assert own.wait_message() == "devices/device-1/temp 21.5"


def test_dev_acl_denies_others(dev_broker: BrokerProcess, tmp_path: Path) -> None:
    token = tokens.sign_dev_token(tmp_path / "dev-data", "device-1")
    server = ["-h", "127.0.0.1", "-p", str(dev_broker.port), "-u", "JWT", "-P", token]
    with MosquittoSub([*server, "-t", "devices/device-2/#"]) as other:
        assert other.wait_subscribed() == [128]


def test_dev_bad_token_rejected(dev_broker: BrokerProcess) -> None:
    server = [
        "-h",
        "127.0.0.1",
        "-p",
        str(dev_broker.port),
        "-u",
        "JWT",
        "-P",
        "not-a-token",
    ]
    published = mosquitto_pub([*server, "-t", "dev/x", "-m", "x"])
    assert published.returncode != 0
    assert (
        "not authorised" in published.stderr.lower()
        or "bad user" in published.stderr.lower()
    )


def test_dev_restart_keeps_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "dev-data"
    first = start_dev_broker(data_dir)
    first.stop()
    key = tokens.dev_key_path(data_dir).read_bytes()
    token = tokens.sign_dev_token(data_dir, "device-1")
    with start_dev_broker(data_dir) as second:
        assert tokens.dev_key_path(data_dir).read_bytes() == key
        server = ["-h", "127.0.0.1", "-p", str(second.port), "-u", "JWT", "-P", token]
        published = mosquitto_pub([*server, "-t", "dev/x", "-m", "x"])
        assert published.returncode == 0, published.stderr


def test_dev_public_listener_rejected(tmp_path: Path) -> None:
    result = run_twistd(
        "--dev",
        "--data-dir",
        str(tmp_path / "d"),
        "--listen",
        "tcp:1883:interface=0.0.0.0",
    )
    assert result.returncode == 1
    assert "loopback only" in result.stdout


def test_without_dev_no_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with start_broker(
        "--authenticator", "anonymous", "--data-dir", str(data_dir)
    ) as broker:
        assert "DEVELOPMENT MODE" not in broker.log()
    assert not tokens.dev_key_path(data_dir).exists()


def test_dev_from_environment_rejected(tmp_path: Path) -> None:
    result = run_twistd("--data-dir", str(tmp_path / "d"), env={"MQTTAUTH_DEV": "1"})
    assert result.returncode == 1
    assert (
        "MQTTAUTH_DEV: development mode is turned on only by the --dev" in result.stdout
    )
    assert not tokens.dev_key_path(tmp_path / "d").exists()


def test_dev_from_config_file_rejected(tmp_path: Path) -> None:
    config = tmp_path / "mqttauth.toml"
    config.write_text(f'dev = true\ndata-dir = "{tmp_path / "d"}"\n')
    result = run_twistd("--config", str(config))
    assert result.returncode == 1
    assert f"dev in {config}: development mode" in result.stdout
    assert not tokens.dev_key_path(tmp_path / "d").exists()
