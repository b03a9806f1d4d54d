"""parse_settings: combinations, the Entra ID shorthand, and every ConfigError."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwk

from mqttauth.jwt.keys import ASYMMETRIC_ALGORITHMS
from mqttauth.jwt.settings import OPTIONS, JWTSettings, parse_settings
from mqttauth.service.config import ConfigError

TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
JWKS_URL = "https://idp.example.com/keys"


def settings_from(**env: Any) -> dict[str, Any]:
    """Return plugin settings as the service builds them from ``JWT_*`` variables."""
    by_env = {option.env: option for option in OPTIONS}
    values: dict[str, Any] = {"data_dir": None}
    for name, raw in env.items():
        option = by_env[name]
        values[option.name.replace("-", "_")] = option.coerce(raw)
    return values


def parse(**env: Any) -> JWTSettings:
    return parse_settings(settings_from(**env))


def config_error(**env: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(**env)
    return caught.value


@pytest.fixture(scope="module")
def rsa_pem(rsa_key: jwk.RSAKey) -> str:
    return rsa_key.as_pem(private=False).decode()


def test_options_have_jwt_env_names() -> None:
    assert all(
        option.env == option.name.upper().replace("-", "_") for option in OPTIONS
    )


def test_options_cover_issue_variables() -> None:
    names = {option.env for option in OPTIONS}
    assert names >= {
        "JWT_VERIFICATION_KEY",
        "JWT_VERIFICATION_KEY_BASE64",
        "JWT_VERIFICATION_KEY_PATH",
        "JWT_VERIFICATION_KEY_ALGORITHM",
        "JWT_JWKS_URL",
        "JWT_ENTRA_ID_TENANT_ID",
        "JWT_EXPECTED_ISSUER",
        "JWT_AUDIENCE",
        "JWT_PRINCIPAL_CLAIM",
        "JWT_ORGANIZATION_CLAIM",
        "JWT_GROUPS_CLAIM_NAME",
        "JWT_MQTT_CONNECT_USERNAME",
    }


def test_defaults_with_jwks_url() -> None:
    parsed = parse(JWT_JWKS_URL=JWKS_URL)
    assert parsed.policy.algorithms == ASYMMETRIC_ALGORITHMS


def test_default_username_is_jwt() -> None:
    assert parse(JWT_JWKS_URL=JWKS_URL).connect_username == "JWT"


def test_default_method_is_jwt() -> None:
    assert parse(JWT_JWKS_URL=JWKS_URL).methods == ("JWT",)


def test_methods_list_parsed() -> None:
    parsed = parse(
        JWT_JWKS_URL=JWKS_URL, JWT_AUTHENTICATION_METHODS="JWT, CUSTOM-JWT,OAUTH2-JWT"
    )
    assert parsed.methods == ("JWT", "CUSTOM-JWT", "OAUTH2-JWT")


def test_default_principal_claim_is_sub() -> None:
    assert parse(JWT_JWKS_URL=JWKS_URL).policy.principal_claim == "sub"


def test_audiences_parsed() -> None:
    assert parse(JWT_JWKS_URL=JWKS_URL, JWT_AUDIENCE="a,b").policy.audiences == (
        "a",
        "b",
    )


def test_audience_with_space_kept_whole() -> None:
    # Splitting at the space would also accept tokens meant for "API".
    policy = parse(JWT_JWKS_URL=JWKS_URL, JWT_AUDIENCE="My API, other").policy
    assert policy.audiences == ("My API", "other")


def test_toml_list_accepted() -> None:
    values = settings_from(JWT_JWKS_URL=JWKS_URL)
    values["jwt_audience"] = OPTIONS[
        [o.env for o in OPTIONS].index("JWT_AUDIENCE")
    ].coerce(["a", "b"])
    assert parse_settings(values).policy.audiences == ("a", "b")


def test_rsa_pem_default_algorithms(rsa_pem: str) -> None:
    parsed = parse(JWT_VERIFICATION_KEY=rsa_pem)
    assert parsed.policy.algorithms == {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
    }


def test_secret_default_algorithms() -> None:
    assert parse(JWT_VERIFICATION_KEY="x" * 48).policy.algorithms == {"HS256", "HS384"}


def test_pinned_algorithm_only(rsa_pem: str) -> None:
    parsed = parse(JWT_VERIFICATION_KEY=rsa_pem, JWT_VERIFICATION_KEY_ALGORITHM="PS256")
    assert parsed.policy.algorithms == {"PS256"}


def test_key_path_loads(tmp_path: Path, rsa_pem: str) -> None:
    path = tmp_path / "key.pem"
    path.write_text(rsa_pem)
    assert (
        parse(JWT_VERIFICATION_KEY_PATH=str(path)).key_setting
        == "JWT_VERIFICATION_KEY_PATH"
    )


def test_key_base64_loads(rsa_pem: str) -> None:
    text = base64.b64encode(rsa_pem.encode()).decode()
    assert parse(JWT_VERIFICATION_KEY_BASE64=text).key_ring is not None


def test_loopback_http_jwks_url_accepted() -> None:
    for url in (
        "http://127.0.0.1:8080/keys",
        "http://[::1]/keys",
        "http://localhost/k",
    ):
        assert parse(JWT_JWKS_URL=url).jwks_url == url


def test_empty_value_is_unset() -> None:
    assert parse(JWT_JWKS_URL=JWKS_URL, JWT_VERIFICATION_KEY="").key_ring is None


def test_describe_hides_secret() -> None:
    secret = "super-secret-value-" * 3
    text = repr(parse(JWT_VERIFICATION_KEY=secret).describe())
    assert secret not in text


# --- Entra ID -----------------------------------------------------------------


def test_entra_derives_jwks_url() -> None:
    parsed = parse(JWT_ENTRA_ID_TENANT_ID=TENANT)
    assert (
        parsed.jwks_url
        == f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"
    )


def test_entra_derives_issuer() -> None:
    parsed = parse(JWT_ENTRA_ID_TENANT_ID=TENANT)
    assert parsed.policy.issuer == f"https://login.microsoftonline.com/{TENANT}/v2.0"


def test_entra_derives_oid_principal() -> None:
    assert parse(JWT_ENTRA_ID_TENANT_ID=TENANT).policy.principal_claim == "oid"


def test_entra_tenant_lowercased() -> None:
    parsed = parse(JWT_ENTRA_ID_TENANT_ID=TENANT.upper())
    assert parsed.entra_tenant_id == TENANT


def test_entra_explicit_jwks_url_wins() -> None:
    parsed = parse(
        JWT_ENTRA_ID_TENANT_ID=TENANT, JWT_JWKS_URL="http://127.0.0.1:1/keys"
    )
    assert parsed.jwks_url == "http://127.0.0.1:1/keys"


def test_entra_explicit_issuer_wins() -> None:
    issuer = f"https://login.microsoftonline.us/{TENANT}/v2.0"
    parsed = parse(JWT_ENTRA_ID_TENANT_ID=TENANT, JWT_EXPECTED_ISSUER=issuer)
    assert parsed.policy.issuer == issuer


def test_entra_explicit_principal_claim_wins() -> None:
    parsed = parse(JWT_ENTRA_ID_TENANT_ID=TENANT, JWT_PRINCIPAL_CLAIM="sub")
    assert parsed.policy.principal_claim == "sub"


def test_entra_domain_rejected() -> None:
    error = config_error(JWT_ENTRA_ID_TENANT_ID="contoso.onmicrosoft.com")
    assert "GUID in 'iss'" in str(error)


def test_entra_domain_error_names_setting() -> None:
    assert (
        config_error(JWT_ENTRA_ID_TENANT_ID="contoso.com").setting
        == "JWT_ENTRA_ID_TENANT_ID"
    )


@pytest.mark.parametrize("alias", ["common", "organizations", "consumers"])
def test_entra_multi_tenant_alias_rejected(alias: str) -> None:
    assert "multi-tenant" in str(config_error(JWT_ENTRA_ID_TENANT_ID=alias))


def test_entra_with_static_key_rejected(rsa_pem: str) -> None:
    error = config_error(JWT_ENTRA_ID_TENANT_ID=TENANT, JWT_VERIFICATION_KEY=rsa_pem)
    assert error.setting == "JWT_ENTRA_ID_TENANT_ID and JWT_VERIFICATION_KEY"


# --- ConfigError cases ----------------------------------------------------------------


def test_no_key_source_rejected() -> None:
    assert "no verification key" in str(config_error())


def test_jwks_with_static_key_rejected(rsa_pem: str) -> None:
    error = config_error(JWT_JWKS_URL=JWKS_URL, JWT_VERIFICATION_KEY=rsa_pem)
    assert error.setting == "JWT_JWKS_URL and JWT_VERIFICATION_KEY"


def test_jwks_with_key_path_rejected(tmp_path: Path) -> None:
    error = config_error(JWT_JWKS_URL=JWKS_URL, JWT_VERIFICATION_KEY_PATH=str(tmp_path))
    assert error.setting == "JWT_JWKS_URL and JWT_VERIFICATION_KEY_PATH"


def test_two_static_keys_rejected(rsa_pem: str) -> None:
    text = base64.b64encode(rsa_pem.encode()).decode()
    error = config_error(JWT_VERIFICATION_KEY=rsa_pem, JWT_VERIFICATION_KEY_BASE64=text)
    assert error.setting == "JWT_VERIFICATION_KEY and JWT_VERIFICATION_KEY_BASE64"


def test_unparsable_key_rejected() -> None:
    error = config_error(JWT_VERIFICATION_KEY="-----BEGIN PUBLIC KEY-----\nAAAA\n")
    assert error.setting == "JWT_VERIFICATION_KEY"


def test_short_secret_rejected() -> None:
    assert "32 bytes" in str(config_error(JWT_VERIFICATION_KEY="too-short"))


def test_bad_base64_rejected() -> None:
    error = config_error(JWT_VERIFICATION_KEY_BASE64="%%%")
    assert error.setting == "JWT_VERIFICATION_KEY_BASE64"


def test_missing_key_file_rejected(tmp_path: Path) -> None:
    error = config_error(JWT_VERIFICATION_KEY_PATH=str(tmp_path / "absent.pem"))
    assert "absent.pem" in str(error)


@pytest.mark.parametrize(
    "url",
    ["not a url", "ftp://idp.example.com/keys", "https:///keys", "https://idp:99999/k"],
    ids=["text", "ftp", "no-host", "bad-port"],
)
def test_malformed_jwks_url_rejected(url: str) -> None:
    assert config_error(JWT_JWKS_URL=url).setting == "JWT_JWKS_URL"


def test_plain_http_jwks_url_rejected() -> None:
    assert "https" in str(config_error(JWT_JWKS_URL="http://idp.example.com/keys"))


def test_jwks_url_with_credentials_rejected() -> None:
    assert "password" in str(config_error(JWT_JWKS_URL="https://u:p@idp.example.com/k"))


def test_hs_algorithm_with_jwks_rejected() -> None:
    error = config_error(JWT_JWKS_URL=JWKS_URL, JWT_ALGORITHMS="RS256,HS256")
    assert error.setting == "JWT_ALGORITHMS"


def test_unknown_algorithm_rejected() -> None:
    assert "unknown algorithm" in str(
        config_error(JWT_JWKS_URL=JWKS_URL, JWT_ALGORITHMS="XY1")
    )


def test_none_algorithm_rejected() -> None:
    assert "never" in str(config_error(JWT_JWKS_URL=JWKS_URL, JWT_ALGORITHMS="none"))


def test_algorithm_unfit_for_key_rejected(rsa_pem: str) -> None:
    error = config_error(JWT_VERIFICATION_KEY=rsa_pem, JWT_ALGORITHMS="RS256,HS256")
    assert "HS256" in str(error)


def test_pinned_algorithm_unfit_for_key_rejected(rsa_pem: str) -> None:
    error = config_error(
        JWT_VERIFICATION_KEY=rsa_pem, JWT_VERIFICATION_KEY_ALGORITHM="HS256"
    )
    assert error.setting == "JWT_VERIFICATION_KEY_ALGORITHM"


def test_pinned_algorithm_with_jwks_rejected() -> None:
    error = config_error(JWT_JWKS_URL=JWKS_URL, JWT_VERIFICATION_KEY_ALGORITHM="RS256")
    assert error.setting == "JWT_VERIFICATION_KEY_ALGORITHM"


def test_pinned_algorithm_outside_list_rejected(rsa_pem: str) -> None:
    error = config_error(
        JWT_VERIFICATION_KEY=rsa_pem,
        JWT_VERIFICATION_KEY_ALGORITHM="PS256",
        JWT_ALGORITHMS="RS256",
    )
    assert error.setting == "JWT_VERIFICATION_KEY_ALGORITHM and JWT_ALGORITHMS"


def test_secret_too_short_for_hs512_rejected() -> None:
    error = config_error(
        JWT_VERIFICATION_KEY="x" * 32, JWT_VERIFICATION_KEY_ALGORITHM="HS512"
    )
    assert "HS512" in str(error)


@pytest.mark.parametrize("size", ["100", "70000"])
def test_token_size_out_of_range_rejected(size: str) -> None:
    error = config_error(JWT_JWKS_URL=JWKS_URL, JWT_MAX_TOKEN_SIZE=size)
    assert error.setting == "JWT_MAX_TOKEN_SIZE"


def test_huge_leeway_rejected() -> None:
    assert (
        config_error(JWT_JWKS_URL=JWKS_URL, JWT_LEEWAY="7200").setting == "JWT_LEEWAY"
    )


def test_zero_timeout_rejected() -> None:
    error = config_error(JWT_JWKS_URL=JWKS_URL, JWT_JWKS_TIMEOUT="0")
    assert error.setting == "JWT_JWKS_TIMEOUT"


def test_refresh_below_minimum_rejected() -> None:
    error = config_error(
        JWT_JWKS_URL=JWKS_URL,
        JWT_JWKS_REFRESH_INTERVAL="30",
        JWT_JWKS_MIN_REFRESH_INTERVAL="60",
    )
    assert "JWT_JWKS_REFRESH_INTERVAL" in error.setting


def test_zero_refresh_interval_rejected() -> None:
    error = config_error(
        JWT_JWKS_URL=JWKS_URL,
        JWT_JWKS_REFRESH_INTERVAL="0",
        JWT_JWKS_MIN_REFRESH_INTERVAL="0",
    )
    assert error.setting == "JWT_JWKS_REFRESH_INTERVAL"


def test_bad_method_name_rejected() -> None:
    values = settings_from(JWT_JWKS_URL=JWKS_URL)
    values["jwt_authentication_methods"] = ("JWT", "BAD NAME")
    with pytest.raises(ConfigError) as caught:
        parse_settings(values)
    assert caught.value.setting == "JWT_AUTHENTICATION_METHODS"


@pytest.mark.parametrize(
    ("env", "raw"),
    [
        ("JWT_LEEWAY", "soon"),
        ("JWT_LEEWAY", "-1"),
        ("JWT_MAX_TOKEN_SIZE", "big"),
        ("JWT_REQUIRE_EXP", "maybe"),
        ("JWT_JWKS_TIMEOUT", "-3"),
        ("JWT_JWKS_MIN_REFRESH_INTERVAL", "inf"),
        ("JWT_TOKEN_CACHE_SIZE", "1.5"),
    ],
)
def test_coerce_rejects_bad_value(env: str, raw: str) -> None:
    option = next(option for option in OPTIONS if option.env == env)
    with pytest.raises(ValueError):
        option.coerce(raw)
