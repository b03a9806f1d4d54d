"""The example plugins of docs/plugins.md, run exactly as the page shows them."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto_clients import mosquitto_pub
from tests.support.pahoclient import MQTTv311, PahoClient
from tests.support.process import BrokerProcess, run_twistd, start_broker

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"

# Runs in a fresh interpreter, because twisted.plugins computes its search
# path from sys.path when it is first imported.
CHECK = textwrap.dedent(
    """
    import hashlib, hmac
    from zope.interface.verify import verifyObject
    from mqttauth.auth.interfaces import (
        AuthenticationError, AuthRequest, IAuthenticator, IAuthenticatorPlugin,
        IAuthorizer, IAuthorizerPlugin, Identity,
    )
    from mqttauth.service.config import ConfigError
    import twisted.plugins
    from twisted.plugin import getPlugins

    def find(interface, name):
        found = [p for p in getPlugins(interface, twisted.plugins) if p.name == name]
        assert len(found) == 1, found
        return found[0]

    plugin = find(IAuthenticatorPlugin, "client-secret")
    verifyObject(IAuthenticatorPlugin, plugin)
    try:
        plugin.build({"client_secret_key": None}, None)
    except ConfigError as error:
        print("missing key:", error.setting)
    authenticator = plugin.build({"client_secret_key": "change-me"}, None)
    verifyObject(IAuthenticator, authenticator)
    password = hmac.new(b"change-me", b"pump-7", hashlib.sha256).hexdigest()
    good = AuthRequest("pump-7", 4, "127.0.0.1:1", password=password.encode())
    print("principal:", authenticator.authenticate(good).identity.principal)
    try:
        bad = AuthRequest("pump-7", 4, "127.0.0.1:1", password=b"x")
        authenticator.authenticate(bad)
    except AuthenticationError as error:
        print("rejected:", int(error.reason_code), error.reason)

    authorizer_plugin = find(IAuthorizerPlugin, "own-prefix")
    verifyObject(IAuthorizerPlugin, authorizer_plugin)
    authorizer = authorizer_plugin.build({}, None)
    verifyObject(IAuthorizer, authorizer)
    pump = Identity("pump-7", "pump-7")
    publish = authorizer.authorize_publish
    print("own publish:", publish(pump, "clients/pump-7/t", 0, False))
    print("other publish:", publish(pump, "clients/pump-8/t", 0, False))
    print("own filter:", authorizer.authorize_subscribe(pump, "clients/pump-7/#", 0))
    wild = Identity("#", "#")
    print("wildcard id:", authorizer.authorize_subscribe(wild, "clients/#/x", 0))
    """
)


def doc_files() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", text, re.DOTALL)
    return dict(blocks)


def test_doc_names_two_files() -> None:
    assert sorted(doc_files()) == [
        "example_mqtt_plugins.py",
        "twisted/plugins/example_mqtt_dropin.py",
    ]


@pytest.fixture(scope="module")
def check_output(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("plugins")
    for name, source in doc_files().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), str(ROOT)]))
    completed = subprocess.run(
        [sys.executable, "-c", CHECK],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def test_example_missing_key(check_output: list[str]) -> None:
    assert "missing key: CLIENT_SECRET_KEY" in check_output


def test_example_password_accepted(check_output: list[str]) -> None:
    assert "principal: pump-7" in check_output


def test_example_password_rejected(check_output: list[str]) -> None:
    assert "rejected: 134 bad_client_secret" in check_output


def test_example_own_prefix(check_output: list[str]) -> None:
    assert "own publish: True" in check_output
    assert "own filter: True" in check_output


def test_example_other_prefix_undecided(check_output: list[str]) -> None:
    assert "other publish: None" in check_output


def test_example_wildcard_id_undecided(check_output: list[str]) -> None:
    assert "wildcard id: None" in check_output


@pytest.fixture(scope="module")
def plugin_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dropin")
    for name, source in doc_files().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return folder


@pytest.mark.e2e
def test_example_listed_by_help_plugins(plugin_folder: Path) -> None:
    result = run_twistd("--help-plugins", pythonpath=[plugin_folder])
    assert result.returncode == 0, result.stdout
    assert "client-secret" in result.stdout
    assert "own-prefix" in result.stdout


@pytest.fixture(scope="module")
def example_broker(plugin_folder: Path) -> Iterator[BrokerProcess]:
    with start_broker(
        "--authenticator", "client-secret", "--authorizer", "own-prefix",
        env={"CLIENT_SECRET_KEY": "change-me"}, pythonpath=[plugin_folder],
    ) as broker:  # fmt: skip
        yield broker


def pump_password(client_id: str) -> str:
    return hmac.new(b"change-me", client_id.encode(), hashlib.sha256).hexdigest()


@pytest.mark.e2e
def test_example_broker_own_prefix(example_broker: BrokerProcess) -> None:
    client = PahoClient(example_broker.port, "pump-7", protocol=MQTTv311)
    client.client.username_pw_set("pump-7", pump_password("pump-7"))
    _, reason, _ = client.connect()
    try:
        assert reason == 0
        assert client.subscribe("clients/pump-7/#", qos=1) == [1]
        assert client.subscribe("clients/pump-8/#", qos=1) == [128]
        client.publish("clients/pump-8/cmd", b"forged", qos=1)
        client.publish("clients/pump-7/temp", b"21.5", qos=1)
        assert client.next_message().payload == b"21.5"
    finally:
        client.disconnect()


@pytest.mark.e2e
def test_example_broker_wrong_password(example_broker: BrokerProcess) -> None:
    server = ["-h", "127.0.0.1", "-p", str(example_broker.port), "-i", "pump-7"]
    credentials = ["-u", "pump-7", "-P", pump_password("pump-8")]
    published = mosquitto_pub(
        [*server, *credentials, "-t", "clients/pump-7/x", "-m", "x"]
    )
    assert published.returncode != 0
    assert "bad user name or password" in published.stderr
