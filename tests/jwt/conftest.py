"""Keys and token builders shared by the jwt tests.

Keys are generated once per session with joserfc (RSA generation is slow).
Every token of these tests is signed at :data:`NOW`, a fixed POSIX time that
the tests hand to the validator or set on a ``Clock``.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from joserfc import jwk

from tests.support.jwks import sign_token

#: The time the tests run at, in POSIX seconds.
NOW = 1_800_000_000
ISSUER = "https://idp.example.com/"
AUDIENCE = "mqtt-broker"


def claims(**overrides: Any) -> dict[str, Any]:
    """Return valid claims for ``device-1`` at :data:`NOW`, with overrides;
    an override of ``None`` removes the claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "device-1",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 600,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def token(
    key: jwk.Key, alg: str = "RS256", kid: str | None = "k1", **overrides: Any
) -> str:
    """Return a token signed with ``key``, ``alg`` and ``kid`` over :func:`claims`."""
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return sign_token(header, claims(**overrides), key)


@pytest.fixture(scope="session")
def rsa_key() -> jwk.RSAKey:
    return jwk.RSAKey.generate_key(2048)


@pytest.fixture(scope="session")
def other_rsa_key() -> jwk.RSAKey:
    return jwk.RSAKey.generate_key(2048)


@pytest.fixture(scope="session")
def ec_keys() -> dict[str, jwk.ECKey]:
    return {
        curve: jwk.ECKey.generate_key(curve) for curve in ("P-256", "P-384", "P-521")
    }


@pytest.fixture(scope="session")
def ed25519_key() -> jwk.OKPKey:
    return jwk.OKPKey.generate_key("Ed25519")


@pytest.fixture(scope="session")
def secret() -> bytes:
    return secrets.token_bytes(64)


class CapturedLog:
    """Every log event emitted while the fixture is active, formatted."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def messages(self) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(event) for event in self.events]

    def matching(self, text: str) -> list[str]:
        return [message for message in self.messages() if text in message]


@pytest.fixture
def captured_log() -> Any:
    from twisted.logger import globalLogPublisher

    log = CapturedLog()
    globalLogPublisher.addObserver(log)
    yield log
    globalLogPublisher.removeObserver(log)
