"""JWTAuthenticator with static keys: the three flows, reason codes, the cache,
logging, and the plugin."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc import jwk
from twisted.application.service import IService
from twisted.internet.task import Clock
from twisted.plugin import IPlugin, getPlugins
from zope.interface.verify import verifyObject

import twisted.plugins
from mqttauth.auth.interfaces import (
    AuthenticationError,
    AuthRequest,
    AuthSuccess,
    IAuthenticator,
    IAuthenticatorPlugin,
)
from mqttauth.jwt.authenticator import JWTAuthenticator, build_authenticator
from mqttauth.jwt.settings import OPTIONS, parse_settings
from mqttauth.mqtt.constants import ReasonCode
from tests.jwt.conftest import AUDIENCE, ISSUER, NOW, CapturedLog, token
from tests.support.jwks import public_jwk


def plugin_settings(**env: Any) -> dict[str, Any]:
    by_env = {option.env: option for option in OPTIONS}
    values: dict[str, Any] = {"data_dir": None}
    for name, raw in env.items():
        option = by_env[name]
        values[option.name.replace("-", "_")] = option.coerce(raw)
    return values


def make_authenticator(key: jwk.Key, **env: Any) -> JWTAuthenticator:
    if "JWT_VERIFICATION_KEY" not in env:
        env["JWT_VERIFICATION_KEY"] = key.as_pem(private=False).decode()
    env.setdefault("JWT_EXPECTED_ISSUER", ISSUER)
    env.setdefault("JWT_AUDIENCE", AUDIENCE)
    clock = Clock()
    clock.advance(NOW)
    return JWTAuthenticator(parse_settings(plugin_settings(**env)), clock)


def legacy(
    text: str | None, username: str | None = "JWT", **fields: Any
) -> AuthRequest:
    password = text.encode() if text is not None else None
    return AuthRequest(
        client_id="client-1",
        protocol_level=4,
        peer="127.0.0.1:5000",
        username=username,
        password=password,
        **fields,
    )


def enhanced(text: str, method: str = "JWT", **fields: Any) -> AuthRequest:
    return AuthRequest(
        client_id="client-1",
        protocol_level=5,
        peer="127.0.0.1:5000",
        method=method,
        data=text.encode(),
        **fields,
    )


def rejection(
    authenticator: JWTAuthenticator, request: AuthRequest
) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        authenticator.authenticate(request)
    return caught.value


@pytest.fixture
def authenticator(rsa_key: jwk.RSAKey) -> JWTAuthenticator:
    return make_authenticator(rsa_key)


# --- interfaces and plugin ---


def test_authenticator_provides_interface(authenticator: JWTAuthenticator) -> None:
    assert verifyObject(IAuthenticator, authenticator)


def test_authenticator_provides_service(authenticator: JWTAuthenticator) -> None:
    assert verifyObject(IService, authenticator)


def test_plugin_found_by_name() -> None:
    names = [
        plugin.name for plugin in getPlugins(IAuthenticatorPlugin, twisted.plugins)
    ]
    assert "jwt" in names


def jwt_plugin() -> Any:
    plugins = getPlugins(IAuthenticatorPlugin, twisted.plugins)
    return next(plugin for plugin in plugins if plugin.name == "jwt")


def test_plugin_provides_interface() -> None:
    assert verifyObject(IAuthenticatorPlugin, jwt_plugin())


def test_plugin_provides_iplugin() -> None:
    assert IPlugin.providedBy(jwt_plugin())


def test_plugin_options_are_options() -> None:
    assert tuple(jwt_plugin().options) == OPTIONS


def test_plugin_build_gives_authenticator(rsa_key: jwk.RSAKey) -> None:
    settings = plugin_settings(
        JWT_VERIFICATION_KEY=rsa_key.as_pem(private=False).decode()
    )
    assert verifyObject(IAuthenticator, jwt_plugin().build(settings, Clock()))


def test_build_with_jwks_url_has_key_source() -> None:
    settings = plugin_settings(JWT_JWKS_URL="https://idp.example.com/keys")
    assert build_authenticator(settings, Clock()).key_source is not None


def test_methods_from_settings(rsa_key: jwk.RSAKey) -> None:
    authenticator = make_authenticator(
        rsa_key, JWT_AUTHENTICATION_METHODS="JWT,OAUTH2-JWT"
    )
    assert authenticator.methods == ("JWT", "OAUTH2-JWT")


# --- legacy flow ---


def test_legacy_accepted(authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey) -> None:
    result = authenticator.authenticate(legacy(token(rsa_key)))
    assert isinstance(result, AuthSuccess)


def test_identity_from_token(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    identity = authenticator.authenticate(legacy(token(rsa_key))).identity
    assert identity.principal == "device-1"


def test_identity_client_id_from_request(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    identity = authenticator.authenticate(legacy(token(rsa_key))).identity
    assert identity.client_id == "client-1"


def test_identity_expiry_is_exp_plus_leeway(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    identity = authenticator.authenticate(legacy(token(rsa_key))).identity
    assert identity.expires_at == NOW + 600 + 30


def test_identity_attributes_hold_claims_not_token(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    text = token(rsa_key)
    identity = authenticator.authenticate(legacy(text)).identity
    assert text not in json.dumps(dict(identity.attributes))


def test_identity_groups_and_organization(rsa_key: jwk.RSAKey) -> None:
    authenticator = make_authenticator(
        rsa_key, JWT_GROUPS_CLAIM_NAME="roles", JWT_ORGANIZATION_CLAIM="azp"
    )
    identity = authenticator.authenticate(
        legacy(token(rsa_key, roles=["a", "b"], azp="app"))
    ).identity
    assert (identity.organization, identity.groups) == ("app", ("a", "b"))


def test_legacy_wrong_username_rejected(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    error = rejection(authenticator, legacy(token(rsa_key), username="device-1"))
    assert error.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD


def test_legacy_wrong_username_reason(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    error = rejection(authenticator, legacy(token(rsa_key), username="device-1"))
    assert error.reason == "wrong_user_name"


def test_legacy_no_credentials_not_authorized(authenticator: JWTAuthenticator) -> None:
    error = rejection(authenticator, legacy(None, username=None))
    assert error.reason_code == ReasonCode.NOT_AUTHORIZED


def test_legacy_empty_password_rejected(authenticator: JWTAuthenticator) -> None:
    error = rejection(authenticator, legacy(""))
    assert error.reason == "missing_token"


def test_legacy_bad_token_bad_password(
    authenticator: JWTAuthenticator, other_rsa_key: jwk.RSAKey
) -> None:
    error = rejection(authenticator, legacy(token(other_rsa_key)))
    assert error.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD


def test_legacy_expired_reason_string(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    error = rejection(authenticator, legacy(token(rsa_key, exp=NOW - 100)))
    assert "expired" in error.reason_string


def test_rejection_carries_kid(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    error = rejection(authenticator, legacy(token(rsa_key, kid="k9", exp=NOW - 100)))
    assert error.key_id == "k9"


def test_any_username_setting(rsa_key: jwk.RSAKey) -> None:
    authenticator = make_authenticator(rsa_key, JWT_MQTT_CONNECT_USERNAME="*")
    result = authenticator.authenticate(legacy(token(rsa_key), username="whatever"))
    assert result.identity.principal == "device-1"


def test_custom_username_setting(rsa_key: jwk.RSAKey) -> None:
    authenticator = make_authenticator(rsa_key, JWT_MQTT_CONNECT_USERNAME="token")
    error = rejection(authenticator, legacy(token(rsa_key), username="JWT"))
    assert error.reason == "wrong_user_name"


def test_username_never_becomes_principal(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    authenticator = make_authenticator(rsa_key, JWT_MQTT_CONNECT_USERNAME="*")
    identity = authenticator.authenticate(
        legacy(token(rsa_key), username="admin")
    ).identity
    assert identity.principal == "device-1"


# --- enhanced authentication ---


def test_enhanced_accepted(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    result = authenticator.authenticate(enhanced(token(rsa_key)))
    assert result.identity.principal == "device-1"


def test_enhanced_other_method_rejected(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    error = rejection(authenticator, enhanced(token(rsa_key), method="SCRAM-SHA-1"))
    assert error.reason_code == ReasonCode.BAD_AUTHENTICATION_METHOD


def test_enhanced_added_method_accepted(rsa_key: jwk.RSAKey) -> None:
    authenticator = make_authenticator(
        rsa_key, JWT_AUTHENTICATION_METHODS="JWT,CUSTOM-JWT"
    )
    result = authenticator.authenticate(enhanced(token(rsa_key), method="CUSTOM-JWT"))
    assert result.identity.principal == "device-1"


def test_enhanced_missing_data_rejected(authenticator: JWTAuthenticator) -> None:
    error = rejection(authenticator, enhanced(""))
    assert error.reason_code == ReasonCode.NOT_AUTHORIZED


def test_enhanced_bad_token_not_authorized(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    error = rejection(authenticator, enhanced(token(rsa_key, iss="https://evil/")))
    assert error.reason_code == ReasonCode.NOT_AUTHORIZED


def test_enhanced_bad_token_reason(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    error = rejection(authenticator, enhanced(token(rsa_key, iss="https://evil/")))
    assert error.reason == "wrong_issuer"


def test_enhanced_ignores_username(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    result = authenticator.authenticate(enhanced(token(rsa_key), username="someone"))
    assert result.identity.principal == "device-1"


# --- re-authentication ---


def test_reauth_accepted_with_new_expiry(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    first = authenticator.authenticate(enhanced(token(rsa_key))).identity
    request = enhanced(token(rsa_key, exp=NOW + 3600), current=first)
    assert authenticator.authenticate(request).identity.expires_at == NOW + 3600 + 30


def test_reauth_bad_token_not_authorized(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    first = authenticator.authenticate(enhanced(token(rsa_key))).identity
    error = rejection(
        authenticator, enhanced(token(rsa_key, exp=NOW - 60), current=first)
    )
    assert error.reason_code == ReasonCode.NOT_AUTHORIZED


def test_reauth_without_method_protocol_error(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    first = authenticator.authenticate(legacy(token(rsa_key))).identity
    error = rejection(authenticator, legacy(token(rsa_key), current=first))
    assert error.reason_code == ReasonCode.PROTOCOL_ERROR


def test_reauth_other_principal_returned(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    first = authenticator.authenticate(enhanced(token(rsa_key))).identity
    request = enhanced(token(rsa_key, sub="device-2"), current=first)
    assert authenticator.authenticate(request).identity.principal == "device-2"


# --- static key sets ---


def test_static_jwks_unknown_kid(rsa_key: jwk.RSAKey) -> None:
    document = json.dumps({"keys": [public_jwk(rsa_key, "k1")]})
    authenticator = make_authenticator(rsa_key, JWT_VERIFICATION_KEY=document)
    error = rejection(authenticator, legacy(token(rsa_key, kid="k2")))
    assert error.reason == "unknown_key"


def test_hmac_secret_accepted(secret: bytes) -> None:
    key = jwk.OctKey.import_key(secret)
    authenticator = make_authenticator(key, JWT_VERIFICATION_KEY=secret.hex())
    hex_key = jwk.OctKey.import_key(secret.hex().encode())
    result = authenticator.authenticate(legacy(token(hex_key, "HS256")))
    assert result.identity.principal == "device-1"


def test_hmac_secret_rejects_rsa_signed(secret: bytes, rsa_key: jwk.RSAKey) -> None:
    authenticator = make_authenticator(rsa_key, JWT_VERIFICATION_KEY=secret.hex())
    error = rejection(authenticator, legacy(token(rsa_key, "RS256")))
    assert error.reason == "unsupported_algorithm"


# --- verified-token cache ---


def test_cache_remembers_token(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    text = token(rsa_key)
    authenticator.authenticate(legacy(text))
    authenticator.authenticate(legacy(text))
    assert len(authenticator.cache) == 1


def test_cache_hit_gives_own_client_id(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    text = token(rsa_key)
    authenticator.authenticate(legacy(text))
    request = AuthRequest(
        "client-2", 4, "127.0.0.1:1", username="JWT", password=text.encode()
    )
    assert authenticator.authenticate(request).identity.client_id == "client-2"


def test_cached_token_expires(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    text = token(rsa_key)
    authenticator.authenticate(legacy(text))
    authenticator.clock.advance(600 + 30)
    assert rejection(authenticator, legacy(text)).reason == "expired_token"


def test_cached_token_still_checks_username(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    text = token(rsa_key)
    authenticator.authenticate(legacy(text))
    assert (
        rejection(authenticator, legacy(text, username="x")).reason == "wrong_user_name"
    )


def test_cache_off_with_zero(rsa_key: jwk.RSAKey) -> None:
    authenticator = make_authenticator(rsa_key, JWT_TOKEN_CACHE_SIZE="0")
    authenticator.authenticate(legacy(token(rsa_key)))
    assert len(authenticator.cache) == 0


def test_cache_bounded(rsa_key: jwk.RSAKey) -> None:
    authenticator = make_authenticator(rsa_key, JWT_TOKEN_CACHE_SIZE="3")
    for number in range(5):
        authenticator.authenticate(legacy(token(rsa_key, sub=f"device-{number}")))
    assert len(authenticator.cache) == 3


def test_failures_not_cached(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey
) -> None:
    rejection(authenticator, legacy(token(rsa_key, exp=NOW - 100)))
    assert len(authenticator.cache) == 0


# --- logging ---


def test_rejection_logged_with_client_and_kid(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey, captured_log: CapturedLog
) -> None:
    rejection(authenticator, legacy(token(rsa_key, exp=NOW - 100)))
    [message] = captured_log.matching("jwt rejected")
    assert "client-1" in message
    assert "kid k1" in message
    assert "0x86" in message


def test_log_never_contains_token(
    authenticator: JWTAuthenticator, rsa_key: jwk.RSAKey, captured_log: CapturedLog
) -> None:
    bad = token(rsa_key, exp=NOW - 100)
    good = token(rsa_key)
    rejection(authenticator, legacy(bad))
    authenticator.authenticate(legacy(good))
    text = "\n".join(captured_log.messages()) + repr(captured_log.events)
    assert bad.split(".")[2] not in text
    assert good.split(".")[2] not in text


def test_rejection_logs_rate_limited(
    authenticator: JWTAuthenticator, captured_log: CapturedLog
) -> None:
    for _ in range(150):
        rejection(authenticator, legacy("garbage"))
    assert len(captured_log.matching("jwt rejected")) == 100


def test_suppressed_rejections_counted(
    authenticator: JWTAuthenticator, captured_log: CapturedLog
) -> None:
    for _ in range(150):
        rejection(authenticator, legacy("garbage"))
    authenticator.clock.advance(10)
    rejection(authenticator, legacy("garbage"))
    assert captured_log.matching("50 more rejections")


def test_start_logs_settings(
    authenticator: JWTAuthenticator, captured_log: CapturedLog
) -> None:
    authenticator.startService()
    assert captured_log.matching(f"jwt JWT_EXPECTED_ISSUER: {ISSUER}")


def test_start_never_logs_secret(secret: bytes, captured_log: CapturedLog) -> None:
    key = jwk.OctKey.import_key(secret)
    authenticator = make_authenticator(key, JWT_VERIFICATION_KEY=secret.hex())
    authenticator.startService()
    assert secret.hex() not in "\n".join(captured_log.messages())
