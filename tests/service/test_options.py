"""Coercion of setting values, and the settings made from plugins and limits."""

from __future__ import annotations

import dataclasses
import os

import pytest

from mqttauth.auth.interfaces import PluginOption
from mqttauth.broker.settings import BrokerSettings
from mqttauth.mqtt.constants import ReasonCode
from mqttauth.service.options import (
    SERVICE_SETTINGS,
    broker_settings,
    combine,
    looks_secret,
    plugin_settings,
    to_bool,
    to_endpoints,
    to_existing_file,
    to_expiry_reason_code,
    to_int,
    to_positive_float,
    to_tls_version,
    to_words,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("YES", True),
        ("on", True),
        ("1", True),
        (True, True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
        (False, False),
    ],
)
def test_bool_accepts(raw: object, expected: bool) -> None:
    assert to_bool(raw) is expected


@pytest.mark.parametrize("raw", ["maybe", "", 2, None])
def test_bool_rejects(raw: object) -> None:
    with pytest.raises(ValueError, match="expected true or false"):
        to_bool(raw)


def test_int_accepts_text_and_number() -> None:
    coerce = to_int(0, 10)
    assert coerce(" 7 ") == 7
    assert coerce(10) == 10


@pytest.mark.parametrize("raw", ["x", "1.5", "", True, 2.0, None])
def test_int_rejects_non_integer(raw: object) -> None:
    with pytest.raises(ValueError, match="expected a whole number"):
        to_int(0)(raw)


@pytest.mark.parametrize("raw", ["-1", 11])
def test_int_rejects_out_of_range(raw: object) -> None:
    with pytest.raises(ValueError, match="expected at least 0 and at most 10"):
        to_int(0, 10)(raw)


def test_float_accepts_seconds() -> None:
    assert to_positive_float("2.5") == 2.5


@pytest.mark.parametrize("raw", ["0", "-1", "inf", "nan", "soon", True])
def test_float_rejects(raw: object) -> None:
    with pytest.raises(ValueError, match="number of seconds"):
        to_positive_float(raw)


def test_existing_file(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "f")
    with open(path, "w") as stream:
        stream.write("x")
    assert to_existing_file(path) == path


def test_existing_file_missing(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ValueError, match="not found"):
        to_existing_file(os.path.join(tmp_path, "missing"))


def test_existing_file_directory(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ValueError, match="not a regular file"):
        to_existing_file(str(tmp_path))


def test_words_split_commas_and_spaces() -> None:
    assert to_words("acl-file, allow-all  jwt") == ("acl-file", "allow-all", "jwt")


def test_words_from_list() -> None:
    assert to_words(["acl-file"]) == ("acl-file",)


def test_words_rejects_empty() -> None:
    with pytest.raises(ValueError, match="at least one name"):
        to_words(" , ")


def test_endpoints_keep_commas() -> None:
    assert to_endpoints("tcp:1 unix:/a,b") == ("tcp:1", "unix:/a,b")


def test_endpoints_reject_number() -> None:
    with pytest.raises(ValueError, match="list of endpoint strings"):
        to_endpoints(1883)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1.2", "1.2"), ("TLSv1.3", "1.3"), (1.3, "1.3")]
)
def test_tls_version_accepts(raw: object, expected: str) -> None:
    assert to_tls_version(raw) == expected


@pytest.mark.parametrize("raw", ["1.1", "1.0", "2"])
def test_tls_version_rejects_old(raw: str) -> None:
    with pytest.raises(ValueError, match="expected 1.2 or 1.3"):
        to_tls_version(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0x87", ReasonCode.NOT_AUTHORIZED),
        ("not-authorized", ReasonCode.NOT_AUTHORIZED),
        ("0xA0", ReasonCode.MAXIMUM_CONNECT_TIME),
        (160, ReasonCode.MAXIMUM_CONNECT_TIME),
        ("MAXIMUM_CONNECT_TIME", ReasonCode.MAXIMUM_CONNECT_TIME),
    ],
)
def test_expiry_reason_code_accepts(raw: object, expected: ReasonCode) -> None:
    assert to_expiry_reason_code(raw) is expected


@pytest.mark.parametrize("raw", ["0x8B", "banned", 999, "x"])
def test_expiry_reason_code_rejects(raw: object) -> None:
    with pytest.raises(ValueError, match="0x87"):
        to_expiry_reason_code(raw)


def test_broker_settings_cover_every_field() -> None:
    names = {setting.name for setting in broker_settings()}
    fields = {
        field.name.replace("_", "-") for field in dataclasses.fields(BrokerSettings)
    }
    assert names == fields


def test_broker_setting_env_names() -> None:
    by_name = {setting.name: setting for setting in broker_settings()}
    assert by_name["max-connections"].env == "MQTTAUTH_MAX_CONNECTIONS"


def test_broker_defaults_survive_coercion() -> None:
    for setting in broker_settings():
        assert setting.coerce(setting.default) == setting.default, setting.name


def test_service_settings_names() -> None:
    names = {setting.name for setting in SERVICE_SETTINGS}
    expected = {
        "listen",
        "config",
        "authenticator",
        "authorizer",
        "password-file",
        "acl-file",
        "data-dir",
        "dev",
    }
    assert expected <= names


@pytest.mark.parametrize(
    "name",
    [
        "jwt-verification-key",
        "jwt-verification-key-base64",
        "mqtt-password",
        "client-secret",
    ],
)
def test_secret_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    [
        "jwt-verification-key-path",
        "jwt-jwks-url",
        "password-file",
        "jwt-max-token-size",
        "jwt-verification-key-algorithm",
    ],
)
def test_not_secret_names(name: str) -> None:
    assert not looks_secret(name)


def test_plugin_settings_keep_option_fields() -> None:
    option = PluginOption("jwt-jwks-url", "JWT_JWKS_URL", "JWKS URL", default="x")
    (setting,) = plugin_settings("jwt", [option])
    assert (setting.name, setting.env, setting.owner, setting.key) == (
        "jwt-jwks-url",
        "JWT_JWKS_URL",
        "jwt",
        "jwt_jwks_url",
    )


def test_combine_keeps_first_definition() -> None:
    first = plugin_settings("a", [PluginOption("shared", "A_SHARED", "a")])
    second = plugin_settings("b", [PluginOption("shared", "A_SHARED", "b")])
    settings, notes = combine([first, second])
    assert [setting.owner for setting in settings] == ["a"]
    assert notes == []


def test_combine_notes_different_env() -> None:
    first = plugin_settings("a", [PluginOption("shared", "A_SHARED", "a")])
    second = plugin_settings("b", [PluginOption("shared", "B_SHARED", "b")])
    _, notes = combine([first, second])
    assert notes == [
        "Option --shared of b reads A_SHARED (as a defines it), not B_SHARED"
    ]
