"""Start-up of ``twistd mqttauth --authenticator jwt``: errors and the log."""

from __future__ import annotations

import pytest
from joserfc import jwk

from tests.support.process import run_twistd, start_broker

pytestmark = pytest.mark.e2e

LISTEN = ("--listen", "tcp:0:interface=127.0.0.1")


def test_jwks_url_with_static_key_stops() -> None:
    env = {
        "JWT_JWKS_URL": "https://idp.example.com/keys",
        "JWT_VERIFICATION_KEY": "s" * 40,
    }
    result = run_twistd("--authenticator", "jwt", *LISTEN, env=env)
    assert result.returncode == 1
    assert "JWT_JWKS_URL and JWT_VERIFICATION_KEY" in result.stdout


def test_entra_domain_stops_with_explanation() -> None:
    env = {"JWT_ENTRA_ID_TENANT_ID": "contoso.onmicrosoft.com"}
    result = run_twistd("--authenticator", "jwt", *LISTEN, env=env)
    assert result.returncode == 1
    assert "Entra ID puts the GUID in 'iss'" in result.stdout


def test_plain_http_jwks_url_stops() -> None:
    result = run_twistd(
        "--authenticator", "jwt", *LISTEN, "--jwt-jwks-url", "http://idp.example.com/k"
    )
    assert result.returncode == 1
    assert "--jwt-jwks-url" in result.stdout


def test_no_key_source_stops() -> None:
    result = run_twistd("--authenticator", "jwt", *LISTEN)
    assert result.returncode == 1
    assert "no verification key is configured" in result.stdout


def test_start_logs_settings_not_secret() -> None:
    secret = "a-long-shared-secret-for-hmac-signatures!"
    env = {"JWT_VERIFICATION_KEY": secret, "JWT_EXPECTED_ISSUER": "https://idp/"}
    with start_broker("--authenticator", "jwt", env=env) as broker:
        broker.wait_for_log(r"jwt JWT_EXPECTED_ISSUER: https://idp/")
        broker.wait_for_log(r"jwt JWT_ALGORITHMS: HS256")
        log = broker.log()
    assert secret not in log


def test_start_logs_static_key_kind() -> None:
    pem = jwk.ECKey.generate_key("P-256").as_pem(private=False).decode()
    with start_broker(
        "--authenticator", "jwt", env={"JWT_VERIFICATION_KEY": pem}
    ) as broker:
        broker.wait_for_log(
            r"jwt keys: 1 static key\(s\) \(EC\) from JWT_VERIFICATION_KEY"
        )
