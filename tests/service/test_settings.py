"""Merging the command line, the environment and the TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttauth.auth.interfaces import PluginOption
from mqttauth.service.config import ConfigError
from mqttauth.service.options import (
    SERVICE_SETTINGS,
    broker_settings,
    combine,
    plugin_settings,
)
from mqttauth.service.settings import resolve

JWT_OPTIONS = [
    PluginOption("jwt-jwks-url", "JWT_JWKS_URL", "JWKS URL"),
    PluginOption("jwt-verification-key", "JWT_VERIFICATION_KEY", "key"),
    PluginOption("jwt-leeway", "JWT_LEEWAY", "seconds", default="30", coerce=int),
]
SETTINGS, _ = combine(
    [SERVICE_SETTINGS, broker_settings(), plugin_settings("jwt", JWT_OPTIONS)]
)


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mqttauth.toml"
    path.write_text(text)
    return str(path)


def test_defaults_apply() -> None:
    resolved = resolve(SETTINGS, {}, {})
    assert resolved.values["listen"] == ("tcp:1883",)
    assert resolved.values["authorizer"] == ("allow-all",)
    assert resolved.values["max_connections"] == 0
    assert resolved.values["authenticator"] is None


def test_plugin_default_coerced() -> None:
    assert resolve(SETTINGS, {}, {}).values["jwt_leeway"] == 30


def test_command_line_beats_environment_and_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "max-connections = 3\n")
    resolved = resolve(
        SETTINGS,
        {"config": config, "max_connections": "1"},
        {"MQTTAUTH_MAX_CONNECTIONS": "2"},
    )
    assert resolved.values["max_connections"] == 1
    assert resolved.sources["max_connections"] == "command line"


def test_environment_beats_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "max-connections = 3\n")
    resolved = resolve(SETTINGS, {"config": config}, {"MQTTAUTH_MAX_CONNECTIONS": "2"})
    assert resolved.values["max_connections"] == 2
    assert resolved.sources["max_connections"] == "environment"


def test_file_beats_default(tmp_path: Path) -> None:
    config = write_config(tmp_path, "max-connections = 3\n")
    resolved = resolve(SETTINGS, {"config": config}, {})
    assert resolved.values["max_connections"] == 3
    assert resolved.sources["max_connections"] == "config file"


def test_plugin_option_precedence(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'jwt-jwks-url = "https://file/"\n')
    from_env = resolve(SETTINGS, {"config": config}, {"JWT_JWKS_URL": "https://env/"})
    from_cli = resolve(
        SETTINGS,
        {"config": config, "jwt_jwks_url": "https://cli/"},
        {"JWT_JWKS_URL": "https://env/"},
    )
    assert from_env.values["jwt_jwks_url"] == "https://env/"
    assert from_cli.values["jwt_jwks_url"] == "https://cli/"


def test_config_named_by_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'authenticator = "anonymous"\n')
    resolved = resolve(SETTINGS, {}, {"MQTTAUTH_CONFIG": config})
    assert resolved.values["authenticator"] == "anonymous"
    assert resolved.config_file == config


def test_list_from_file_and_environment(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, 'listen = ["tcp:1", "tcp:2"]\nauthorizer = "acl-file"\n'
    )
    from_file = resolve(SETTINGS, {"config": config}, {})
    from_env = resolve(SETTINGS, {}, {"MQTTAUTH_LISTEN": "tcp:3  tcp:4"})
    assert from_file.values["listen"] == ("tcp:1", "tcp:2")
    assert from_file.values["authorizer"] == ("acl-file",)
    assert from_env.values["listen"] == ("tcp:3", "tcp:4")


def test_command_line_list_replaces_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'authorizer = ["acl-file", "allow-all"]\n')
    resolved = resolve(SETTINGS, {"config": config, "authorizer": ["jwt-acl"]}, {})
    assert resolved.values["authorizer"] == ("jwt-acl",)


def test_flag_from_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "tls-require-client-cert = true\n")
    assert (
        resolve(SETTINGS, {"config": config}, {}).values["tls_require_client_cert"]
        is True
    )


def test_flag_from_environment() -> None:
    resolved = resolve(SETTINGS, {}, {"MQTTAUTH_TLS_REQUIRE_CLIENT_CERT": "yes"})
    assert resolved.values["tls_require_client_cert"] is True


def test_empty_environment_variable_is_unset() -> None:
    assert (
        resolve(SETTINGS, {}, {"MQTTAUTH_MAX_CONNECTIONS": ""}).values[
            "max_connections"
        ]
        == 0
    )


def test_invalid_command_line_value_names_option() -> None:
    with pytest.raises(
        ConfigError, match=r"^--max-connections: invalid value: expected a whole"
    ):
        resolve(SETTINGS, {"max_connections": "many"}, {})


def test_invalid_environment_value_names_variable() -> None:
    with pytest.raises(ConfigError, match=r"^MQTTAUTH_MAX_PACKET_SIZE: invalid value"):
        resolve(SETTINGS, {}, {"MQTTAUTH_MAX_PACKET_SIZE": "1MB"})


def test_invalid_file_value_names_key_and_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'max-inflight = "lots"\n')
    with pytest.raises(ConfigError) as caught:
        resolve(SETTINGS, {"config": config}, {})
    assert str(caught.value).startswith(f"max-inflight in {config}: invalid value")


def test_unknown_file_key_suggests(tmp_path: Path) -> None:
    config = write_config(tmp_path, "max-conections = 3\n")
    with pytest.raises(
        ConfigError, match="unknown setting; did you mean 'max-connections'"
    ):
        resolve(SETTINGS, {"config": config}, {})


def test_underscore_file_key_rejected(tmp_path: Path) -> None:
    config = write_config(tmp_path, "max_connections = 3\n")
    with pytest.raises(ConfigError, match="max_connections in .*unknown setting"):
        resolve(SETTINGS, {"config": config}, {})


def test_config_key_inside_file_rejected(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'config = "other.toml"\n')
    with pytest.raises(ConfigError, match="cannot name another config file"):
        resolve(SETTINGS, {"config": config}, {})


def test_broken_toml_rejected(tmp_path: Path) -> None:
    config = write_config(tmp_path, "listen = [\n")
    with pytest.raises(ConfigError, match=r"^--config: .* is not valid TOML"):
        resolve(SETTINGS, {"config": config}, {})


def test_non_utf8_toml_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mqttauth.toml"
    path.write_bytes(b'acl-file = "\xff"\n')
    with pytest.raises(ConfigError, match=r"^--config: .* is not UTF-8 text"):
        resolve(SETTINGS, {"config": str(path)}, {})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^--config: invalid value: file .* not found"
    ):
        resolve(SETTINGS, {"config": str(tmp_path / "none.toml")}, {})


def test_missing_config_file_from_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^MQTTAUTH_CONFIG: invalid value: file"):
        resolve(SETTINGS, {}, {"MQTTAUTH_CONFIG": str(tmp_path / "none.toml")})


def test_unknown_environment_variables_listed() -> None:
    resolved = resolve(SETTINGS, {}, {"MQTTAUTH_MAX_CONECTIONS": "3", "OTHER": "x"})
    assert resolved.unknown_environment == ("MQTTAUTH_MAX_CONECTIONS",)


def test_describe_hides_secrets() -> None:
    resolved = resolve(SETTINGS, {"jwt_verification_key": "hunter2"}, {})
    rows = {name: shown for name, shown, _ in resolved.describe()}
    assert rows["jwt-verification-key"] == "<hidden>"


def test_describe_marks_dev_overrides() -> None:
    resolved = resolve(SETTINGS, {}, {})
    values = dict(resolved.values, authenticator="jwt")
    rows = {name: source for name, _, source in resolved.describe(values)}
    assert rows["authenticator"] == "--dev"


def test_explicit_lists_set_keys() -> None:
    resolved = resolve(SETTINGS, {"authenticator": "anonymous"}, {"JWT_LEEWAY": "5"})
    assert resolved.explicit() == {"authenticator", "jwt_leeway"}
