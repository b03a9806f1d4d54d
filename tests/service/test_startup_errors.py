"""Every invalid setting stops ``twistd mqttauth`` with status 1 and a message
that names the setting.  Each test runs twistd as a subprocess.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import run_twistd, start_broker
from tests.support.tls import PKI, make_pki

pytestmark = pytest.mark.e2e

LOOPBACK = "tcp:0:interface=127.0.0.1"


def fails(
    *options: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    result = run_twistd(*options, env=env, cwd=cwd)
    assert result.returncode == 1, result.stdout
    return result.stdout


def test_no_authenticator() -> None:
    output = fails("--listen", LOOPBACK)
    assert "--authenticator: no authenticator chosen" in output
    assert "--authenticator anonymous" in output


def test_unknown_authenticator_lists_installed() -> None:
    output = fails("--listen", LOOPBACK, "--authenticator", "kerberos")
    assert "--authenticator: no authenticator plugin named 'kerberos'" in output
    assert "anonymous" in output.split("installed authenticators:")[1]


def test_unknown_authorizer_lists_installed() -> None:
    output = fails(
        "--listen", LOOPBACK, "--authenticator", "anonymous", "--authorizer", "opa"
    )
    assert "--authorizer: no authorizer plugin named 'opa'" in output
    assert "allow-all" in output.split("installed authorizers:")[1]


@pytest.mark.parametrize("endpoint", ["carrier-pigeon:1883", "tcp:port=abc", "tcp"])
def test_bad_endpoint(endpoint: str) -> None:
    output = fails("--listen", endpoint, "--authenticator", "anonymous")
    assert f"--listen: invalid endpoint {endpoint!r}" in output


def test_missing_password_file(tmp_path: Path) -> None:
    missing = tmp_path / "passwd"
    output = fails(
        "--listen",
        LOOPBACK,
        "--authenticator",
        "password-file",
        "--password-file",
        str(missing),
    )
    assert f"--password-file: invalid value: file {str(missing)!r} not found" in output


def test_missing_acl_file(tmp_path: Path) -> None:
    missing = tmp_path / "acl"
    output = fails(
        "--listen", LOOPBACK, "--authenticator", "anonymous", "--acl-file", str(missing)
    )
    assert "--acl-file: invalid value: file" in output


def test_password_file_plugin_without_file() -> None:
    output = fails("--listen", LOOPBACK, "--authenticator", "password-file")
    assert "password-file" in output.split("error:")[1]


def test_non_integer_limit() -> None:
    output = fails(
        "--listen",
        LOOPBACK,
        "--authenticator",
        "anonymous",
        "--max-connections",
        "many",
    )
    assert (
        "--max-connections: invalid value: expected a whole number, got 'many'"
        in output
    )


def test_limit_out_of_range() -> None:
    output = fails(
        "--listen", LOOPBACK, "--authenticator", "anonymous", "--maximum-qos", "3"
    )
    assert (
        "--maximum-qos: invalid value: expected at least 0 and at most 2, got 3"
        in output
    )


def test_invalid_environment_limit() -> None:
    output = fails(
        "--listen",
        LOOPBACK,
        "--authenticator",
        "anonymous",
        env={"MQTTAUTH_MAX_INFLIGHT": "x"},
    )
    assert "MQTTAUTH_MAX_INFLIGHT: invalid value: expected a whole number" in output


def test_unknown_option() -> None:
    output = fails("--lisen", LOOPBACK)
    assert "option --lisen not recognized" in output


def test_unknown_toml_key(tmp_path: Path) -> None:
    config = tmp_path / "mqttauth.toml"
    config.write_text('authenticator = "anonymous"\nmax-conections = 5\n')
    output = fails("--listen", LOOPBACK, "--config", str(config))
    assert f"max-conections in {config}: unknown setting" in output
    assert "did you mean 'max-connections'" in output


def test_invalid_toml(tmp_path: Path) -> None:
    config = tmp_path / "mqttauth.toml"
    config.write_text("authenticator = anonymous\n")
    output = fails("--listen", LOOPBACK, "--config", str(config))
    assert "--config:" in output
    assert "is not valid TOML" in output


def test_missing_config_file(tmp_path: Path) -> None:
    output = fails("--listen", LOOPBACK, "--config", str(tmp_path / "none.toml"))
    assert "--config: invalid value: file" in output


def test_toml_value_of_wrong_type(tmp_path: Path) -> None:
    config = tmp_path / "mqttauth.toml"
    config.write_text('authenticator = "anonymous"\nmax-packet-size = "big"\n')
    output = fails("--listen", LOOPBACK, "--config", str(config))
    assert (
        f"max-packet-size in {config}: invalid value: expected a whole number" in output
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_tls_missing_certificate(pki: PKI, tmp_path: Path) -> None:
    endpoint = f"ssl:0:privateKey={pki.server_key}:certKey={tmp_path}/x.pem"
    output = fails("--listen", endpoint, "--authenticator", "anonymous")
    assert "--listen: certificate file" in output
    assert "not found" in output


def test_tls_old_version() -> None:
    output = fails(
        "--listen", LOOPBACK, "--authenticator", "anonymous", "--tls-min-version", "1.1"
    )
    assert "--tls-min-version: invalid value: expected 1.2 or 1.3" in output


def test_require_client_cert_needs_ca() -> None:
    output = fails(
        "--listen",
        LOOPBACK,
        "--authenticator",
        "anonymous",
        "--tls-require-client-cert",
    )
    assert "--tls-require-client-cert: needs --tls-client-ca" in output


def test_data_dir_parent_missing(tmp_path: Path) -> None:
    data_dir = tmp_path / "no" / "data"
    output = fails(
        "--listen",
        LOOPBACK,
        "--authenticator",
        "anonymous",
        "--data-dir",
        str(data_dir),
    )
    assert "--data-dir: parent directory" in output


def test_data_dir_is_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    output = fails(
        "--listen", LOOPBACK, "--authenticator", "anonymous", "--data-dir", str(path)
    )
    assert "--data-dir:" in output
    assert "is not a directory" in output


@pytest.fixture
def busy_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


def test_port_in_use(busy_port: int) -> None:
    output = fails(
        "--listen",
        f"tcp:{busy_port}:interface=127.0.0.1",
        "--authenticator",
        "anonymous",
    )
    assert f"cannot listen on 'tcp:{busy_port}:interface=127.0.0.1'" in output
    assert "stop the process that uses the port" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_port_out_of_range(port: str) -> None:
    output = fails("--listen", f"tcp:{port}", "--authenticator", "anonymous")
    assert f"cannot listen on 'tcp:{port}'" in output
    assert "correct the --listen endpoint" in output
    assert "Traceback" not in output


def test_interface_not_here() -> None:
    output = fails(
        "--listen", "tcp:0:interface=192.0.2.1", "--authenticator", "anonymous"
    )
    assert "give an interface address that this machine has" in output
    assert "Traceback" not in output


def test_data_dir_in_use(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with start_broker("--authenticator", "anonymous", "--data-dir", str(data_dir)):
        output = fails(
            "--listen",
            LOOPBACK,
            "--authenticator",
            "anonymous",
            "--data-dir",
            str(data_dir),
        )
    assert "mqttauth cannot start: the broker could not restore its state" in output
    assert "Traceback" not in output


def test_jwt_mixed_key_sources() -> None:
    output = fails(
        "--listen",
        LOOPBACK,
        "--authenticator",
        "jwt",
        env={
            "JWT_JWKS_URL": "https://idp.example/keys",
            "JWT_VERIFICATION_KEY": "a-shared-secret-of-enough-length-000000",
        },
    )
    message = output.split("error:")[1]
    assert "JWT_JWKS_URL" in message or "jwt-jwks-url" in message


def test_jwt_error_names_option_given() -> None:
    output = fails(
        "--listen",
        LOOPBACK,
        "--authenticator",
        "jwt",
        "--jwt-jwks-url",
        "http://idp.example/keys",
    )
    message = output.split("error:")[1]
    assert message.startswith(" --jwt-jwks-url: 'http://idp.example/keys' uses plain")


def test_jwt_error_names_toml_key(tmp_path: Path) -> None:
    config = tmp_path / "mqttauth.toml"
    config.write_text(
        'authenticator = "jwt"\njwt-max-token-size = 10\n'
        'jwt-jwks-url = "https://idp.example/keys"\n'
    )
    output = fails("--listen", LOOPBACK, "--config", str(config))
    message = output.split("error:")[1]
    assert message.startswith(f" jwt-max-token-size in {config}: 10 is out of range")


def test_jwt_conflict_names_each_as_given() -> None:
    output = fails(
        "--listen",
        LOOPBACK,
        "--authenticator",
        "jwt",
        "--jwt-jwks-url",
        "https://idp.example/keys",
        env={"JWT_VERIFICATION_KEY": "a-shared-secret-of-enough-length-000000"},
    )
    message = output.split("error:")[1]
    assert message.startswith(" --jwt-jwks-url and JWT_VERIFICATION_KEY: each names")


def test_acl_file_without_acl_authorizer(tmp_path: Path) -> None:
    acl = tmp_path / "acl.conf"
    acl.write_text("pattern readwrite t/{username}/#\n")
    output = fails(
        "--listen", LOOPBACK, "--authenticator", "anonymous", "--acl-file", str(acl)
    )
    message = output.split("error:")[1]
    assert message.startswith(" --acl-file: ")
    assert "allow-all" in message
    assert "--authorizer acl-file" in message


def test_acl_rules_without_acl_authorizer() -> None:
    output = fails(
        "--listen",
        LOOPBACK,
        "--authenticator",
        "anonymous",
        env={"MQTTAUTH_ACL_RULES": "t/{username}/#, ALL, , ALLOW"},
    )
    message = output.split("error:")[1]
    assert message.startswith(" MQTTAUTH_ACL_RULES: ")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("--authenticator", "anonymous"), "--authenticator"),
        (("--authorizer", "allow-all"), "--authorizer"),
        (("--jwt-audience", "mine"), "--jwt-audience"),
    ],
)
def test_dev_rejects_replaced_options(
    tmp_path: Path, options: tuple[str, ...], named: str
) -> None:
    output = fails("--dev", "--data-dir", str(tmp_path / "dev"), *options)
    assert f"cannot be combined with {named}" in output
    assert "Traceback" not in output
