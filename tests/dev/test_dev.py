"""Development mode set-up: listeners, key, ACL, JWKS server and banner."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from joserfc import jwk, jwt
from twisted.internet import reactor
from twisted.logger import globalLogPublisher

from mqttauth import dev, tokens
from mqttauth.service.config import ConfigError


@pytest.mark.parametrize(
    ("description", "host", "port"),
    [
        ("tcp:1883:interface=127.0.0.1", "127.0.0.1", 1883),
        ("tcp:port=2000:interface=127.0.0.2", "127.0.0.2", 2000),
        ("tcp:1884:interface=\\:\\:1", "::1", 1884),
        ("tcp:1885:127.0.0.1", "127.0.0.1", 1885),
    ],
)
def test_listener_loopback_parsed(description: str, host: str, port: int) -> None:
    assert dev.parse_loopback_listener(description) == dev.LoopbackEndpoint(host, port)


@pytest.mark.parametrize(
    "description",
    [
        "tcp:1883",
        "tcp:1883:interface=0.0.0.0",
        "tcp:1883:interface=192.0.2.1",
        "tcp:1883:interface=localhost",
        "ssl:8883:interface=127.0.0.1",
        "unix:/tmp/mqtt.sock",
        "tcp:interface=127.0.0.1",
        "tcp:0:interface=127.0.0.1",
    ],
)
def test_listener_rejected(description: str) -> None:
    with pytest.raises(ConfigError) as raised:
        dev.parse_loopback_listener(description)
    assert raised.value.setting == "--listen"


def prepare(settings: dict[str, Any]) -> tuple[dict[str, Any], list[Any], str]:
    overrides, services, banner = dev.prepare_dev_mode(settings, reactor)
    for service in services:
        service.startService()
    return overrides, services, banner


@pytest_twisted.async_yield_fixture
async def prepared(tmp_path: Path) -> Any:
    started: list[Any] = []

    def run(settings: dict[str, Any]) -> tuple[dict[str, Any], list[Any], str]:
        result = prepare({"data_dir": str(tmp_path / "dev"), **settings})
        started.extend(result[1])
        return result

    yield run
    for service in started:
        await service.stopService()


def test_default_listener_loopback(prepared: Any) -> None:
    overrides, _, _ = prepared({"listen": ["tcp:1883"]})
    assert overrides["listen"] == (dev.DEV_LISTEN,)


def test_no_listener_loopback(prepared: Any) -> None:
    overrides, _, _ = prepared({})
    assert overrides["listen"] == (dev.DEV_LISTEN,)


def test_given_listener_kept(prepared: Any) -> None:
    overrides, _, _ = prepared({"listen": ("tcp:2883:interface=127.0.0.1",)})
    assert overrides["listen"] == ("tcp:2883:interface=127.0.0.1",)


def test_public_listener_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        dev.prepare_dev_mode(
            {"data_dir": str(tmp_path), "listen": ["tcp:1883:interface=0.0.0.0"]},
            reactor,
        )


def test_data_dir_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ConfigError) as raised:
        dev.prepare_dev_mode({"data_dir": str(path)}, reactor)
    assert raised.value.setting == "--data-dir"
    assert "is not a directory" in raised.value.message


@pytest.mark.parametrize(
    "content",
    [b"garbage\n", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"],
)
def test_broken_dev_key_rejected(tmp_path: Path, content: bytes) -> None:
    tokens.dev_key_path(tmp_path).write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        dev.prepare_dev_mode({"data_dir": str(tmp_path)}, reactor)
    assert raised.value.setting == "--dev"
    assert f"Delete {str(tokens.dev_key_path(tmp_path))!r}" in raised.value.message


def test_overrides_configure_jwt(prepared: Any, tmp_path: Path) -> None:
    overrides, services, _ = prepared({})
    assert overrides["authenticator"] == "jwt"
    assert overrides["jwt_jwks_url"] == services[0].jwks_url
    assert overrides["jwt_expected_issuer"] == tokens.DEV_ISSUER
    assert overrides["jwt_audience"] == (tokens.DEV_AUDIENCE,)
    assert overrides["authorizer"] == ("acl-file",)
    assert overrides["data_dir"] == str(tmp_path / "dev")


def test_static_key_settings_unset(prepared: Any) -> None:
    overrides, _, _ = prepared({"jwt_verification_key_path": "/etc/key.pem"})
    assert overrides["jwt_verification_key_path"] is None
    assert overrides["jwt_entra_id_tenant_id"] is None


def test_jwks_url_loopback(prepared: Any) -> None:
    overrides, _, _ = prepared({})
    assert overrides["jwt_jwks_url"].startswith("http://127.0.0.1:")


def test_key_and_acl_created(prepared: Any, tmp_path: Path) -> None:
    overrides, _, _ = prepared({})
    assert tokens.dev_key_path(tmp_path / "dev").exists()
    assert Path(overrides["acl_file"]).read_text() == dev.DEV_ACL


def test_existing_files_kept(prepared: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "dev"
    tokens.create_dev_key(data_dir)
    key_before = tokens.dev_key_path(data_dir).read_bytes()
    acl = data_dir / dev.DEV_ACL_FILENAME
    acl.write_text("pattern readwrite mine/#\n")
    prepared({})
    assert tokens.dev_key_path(data_dir).read_bytes() == key_before
    assert acl.read_text() == "pattern readwrite mine/#\n"


def test_given_acl_file_used(prepared: Any, tmp_path: Path) -> None:
    acl = tmp_path / "site.acl"
    acl.write_text("pattern read x/#\n")
    overrides, _, _ = prepared({"acl_file": str(acl)})
    assert overrides["acl_file"] == str(acl)
    assert not (tmp_path / "dev" / dev.DEV_ACL_FILENAME).exists()


@pytest_twisted.inlineCallbacks
def test_default_data_dir_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    overrides, services, _ = dev.prepare_dev_mode({}, reactor)
    yield services[0].stopService()
    assert overrides["data_dir"] == str(tmp_path / "xdg" / "mqttauth-dev")


def banner_commands(banner: str) -> dict[str, list[str]]:
    commands = {}
    for line in banner.splitlines():
        if line.startswith("mosquitto_"):
            words = shlex.split(line)
            commands[words[0]] = words
    return commands


def test_banner_says_development(prepared: Any) -> None:
    _, _, banner = prepared({})
    assert "DEVELOPMENT MODE" in banner


def test_banner_commands_target_listener(prepared: Any) -> None:
    _, _, banner = prepared({"listen": ["tcp:2999:interface=127.0.0.1"]})
    commands = banner_commands(banner)
    for name in ("mosquitto_sub", "mosquitto_pub"):
        words = commands[name]
        assert words[words.index("-h") + 1] == "127.0.0.1"
        assert words[words.index("-p") + 1] == "2999"
        assert words[words.index("-u") + 1] == "JWT"


@pytest_twisted.inlineCallbacks
def test_jwks_served(prepared: Any) -> Any:
    _, services, _ = prepared({})
    response = yield treq.get(services[0].jwks_url)
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["application/json"]
    assert response.headers.getRawHeaders("cache-control") == ["max-age=300"]
    document = json.loads((yield response.text()))
    assert [key.get("d") for key in document["keys"]] == [None]


@pytest_twisted.inlineCallbacks
def test_discovery_names_jwks(prepared: Any) -> Any:
    _, services, _ = prepared({})
    response = yield treq.get(services[0].base_url + dev.DISCOVERY_PATH)
    document = json.loads((yield response.text()))
    assert document["jwks_uri"] == services[0].jwks_url
    assert document["issuer"] == tokens.DEV_ISSUER


@pytest_twisted.inlineCallbacks
def test_banner_token_verifies(prepared: Any) -> Any:
    _, services, banner = prepared({})
    response = yield treq.get(services[0].jwks_url)
    key_set = jwk.KeySet.import_key_set(json.loads((yield response.text())))
    words = banner_commands(banner)["mosquitto_pub"]
    token = jwt.decode(words[words.index("-P") + 1], key_set, algorithms=["ES256"])
    assert token.claims["sub"] == dev.BANNER_SUBJECT
    assert token.claims["iss"] == tokens.DEV_ISSUER
    assert token.claims["aud"] == tokens.DEV_AUDIENCE


@pytest_twisted.inlineCallbacks
def test_unknown_path_not_found(prepared: Any) -> Any:
    _, services, _ = prepared({})
    response = yield treq.get(services[0].base_url + "/keys")
    assert response.code == 404


@pytest_twisted.inlineCallbacks
def test_stop_closes_port(tmp_path: Path) -> Any:
    _, services, _ = dev.prepare_dev_mode({"data_dir": str(tmp_path)}, reactor)
    services[0].startService()
    yield services[0].stopService()
    with pytest.raises(Exception):  # noqa: B017 (any connection failure will do)
        yield treq.get(services[0].jwks_url)


@pytest.mark.parametrize(("mode", "warned"), [(0o600, False), (0o644, True)])
def test_readable_dev_key_warned(
    prepared: Any, tmp_path: Path, mode: int, warned: bool
) -> None:
    prepared({})
    key_path = tokens.dev_key_path(tmp_path / "dev")
    key_path.chmod(mode)
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        prepared({})
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [e for e in events if "readable by other users" in e["log_format"]]
    assert bool(warnings) == warned
