"""SIGHUP reloads the password and ACL files without dropping connections."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.pahoclient import MQTTv5, PahoClient
from tests.support.process import BrokerProcess, start_broker

pytestmark = pytest.mark.e2e

BEFORE = """\
user alice
topic readwrite alice/#
topic read public/#
user bob
topic write public/#
"""

# alice loses read on public/# and gains write; bob may now read public/#.
AFTER = """\
user alice
topic readwrite alice/#
topic write public/#
user bob
topic readwrite public/#
"""


def add_user(path: Path, user: str, password: str) -> None:
    create = [] if path.exists() else ["-c"]
    subprocess.run(
        ["mosquitto_passwd", *create, "-b", str(path), user, password],
        check=True,
        capture_output=True,
        timeout=30,
    )


def client(broker: BrokerProcess, user: str, password: str) -> PahoClient:
    paho = PahoClient(broker.port, user, MQTTv5)
    paho.client.username_pw_set(user, password)
    return paho


def reload(broker: BrokerProcess) -> str:
    """Send SIGHUP and return the log text the reload wrote."""
    offset = len(broker.log())
    broker.send_signal(signal.SIGHUP)
    broker.wait_for_log(
        r"Reloaded authorizer acl-file|Reloading authorizer acl-file failed",
        after=offset,
    )
    return broker.log()[offset:]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    passwords = tmp_path / "passwd"
    add_user(passwords, "alice", "a-pass")
    add_user(passwords, "bob", "b-pass")
    acl = tmp_path / "acl"
    acl.write_text(BEFORE)
    return passwords, acl


def start(files: tuple[Path, Path]) -> BrokerProcess:
    passwords, acl = files
    return start_broker(
        "--authenticator",
        "password-file",
        "--password-file",
        str(passwords),
        "--authorizer",
        "acl-file",
        "--acl-file",
        str(acl),
    )


def test_reload_changes_rules_keeps_connections(files: tuple[Path, Path]) -> None:
    _, acl = files
    with start(files) as broker:
        alice = client(broker, "alice", "a-pass")
        alice.connect()
        alice.subscribe("public/#", qos=1)
        alice.subscribe("alice/#", qos=1)
        bob = client(broker, "bob", "b-pass")
        bob.connect()
        bob.publish("public/1", b"before", qos=1)
        assert alice.next_message().payload == b"before"

        acl.write_text(AFTER)
        reload(broker)

        # alice's public/# subscription is gone; her connection is not.
        bob.publish("public/2", b"after", qos=1)
        alice.publish("alice/self", b"still here", qos=1)
        message = alice.next_message()
        assert (message.topic, message.payload) == ("alice/self", b"still here")
        assert not alice.disconnected.is_set()
        assert not bob.disconnected.is_set()

        # bob may read public/# now and alice may write it.
        bob.subscribe("public/#", qos=1)
        alice.publish("public/3", b"from alice", qos=1)
        assert bob.next_message().payload == b"from alice"
        alice.disconnect()
        bob.disconnect()
        log = broker.log()
    assert re.search(r"remov\w* .*public/#|public/# .*remov", log, re.IGNORECASE), log


def test_reload_adds_user(files: tuple[Path, Path]) -> None:
    passwords, _ = files
    with start(files) as broker:
        carol = client(broker, "carol", "c-pass")
        _, refused, _ = carol.connect()
        carol.client.loop_stop()
        add_user(passwords, "carol", "c-pass")
        reload(broker)
        carol = client(broker, "carol", "c-pass")
        _, accepted, _ = carol.connect()
        carol.disconnect()
    assert refused.is_failure
    assert not accepted.is_failure


def test_broken_file_keeps_rules(files: tuple[Path, Path]) -> None:
    _, acl = files
    with start(files) as broker:
        alice = client(broker, "alice", "a-pass")
        alice.connect()
        alice.subscribe("public/#", qos=1)
        acl.write_text(BEFORE + "topic sideways public/#\nfrobnicate\n")
        text = reload(broker)
        bob = client(broker, "bob", "b-pass")
        bob.connect()
        bob.publish("public/1", b"rules unchanged", qos=1)
        message = alice.next_message()
        alice.disconnect()
        bob.disconnect()
    assert "line 6" in text
    assert message.payload == b"rules unchanged"


def test_reload_without_reloadable_plugins() -> None:
    with start_broker("--authenticator", "anonymous") as broker:
        subscriber = PahoClient(broker.port, "s", MQTTv5)
        subscriber.connect()
        subscriber.subscribe("t/#", qos=1)
        offset = len(broker.log())
        broker.send_signal(signal.SIGHUP)
        broker.wait_for_log(r"SIGHUP: reloading nothing", after=offset)
        publisher = PahoClient(broker.port, "p", MQTTv5)
        publisher.connect()
        publisher.publish("t/x", b"1", qos=1)
        message = subscriber.next_message()
        publisher.disconnect()
        subscriber.disconnect()
    assert message.payload == b"1"


def test_second_reload_applies_new_rules(files: tuple[Path, Path]) -> None:
    _, acl = files
    with start(files) as broker:
        alice = client(broker, "alice", "a-pass")
        alice.connect()
        alice.subscribe("public/#", qos=1)
        alice.subscribe("alice/#", qos=1)
        # The first reload keeps alice's read access on public/#.
        acl.write_text(BEFORE + "pattern read extra/#\n")
        reload(broker)
        acl.write_text(AFTER)
        second = reload(broker)
        bob = client(broker, "bob", "b-pass")
        bob.connect()
        bob.publish("public/2", b"after", qos=1)
        alice.publish("alice/self", b"still here", qos=1)
        message = alice.next_message()
        alice.disconnect()
        bob.disconnect()
    assert "SIGHUP: reloading" in second
    assert (message.topic, message.payload) == ("alice/self", b"still here")
