"""Entra ID (Azure AD) v2 access tokens, with the ACL scoping apps and devices.

The tokens are shaped like the app-only access tokens Entra ID issues with
the client-credentials grant: issuer ``https://login.microsoftonline.com/
<tenant>/v2.0``, ``aud`` the API's bare application GUID, ``azp`` the calling
app, ``oid`` its service principal, ``roles``, ``tid`` and ``ver: "2.0"``.
They are signed by an RSA key backed by a certificate, which a loopback
server publishes with ``x5t``, ``x5c`` and ``issuer`` members beside ``kid``,
because the broker cannot reach login.microsoftonline.com here.  The broker
gets the tenant id and only the JWKS URL is overridden.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc import jwk, jwt

from tests.support.mosquitto_clients import MosquittoSub, mosquitto_pub
from tests.support.oidc import JWKSServer
from tests.support.process import BrokerProcess, start_broker

pytestmark = pytest.mark.e2e

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
API_APP = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
ACL_RULES = "\n".join(
    [
        "t/{organization}/{username}/#, ALL, , ALLOW",
        "alerts/#, SUBSCRIBE, group=Alerts.Read, ALLOW",
    ]
)


@dataclass(frozen=True)
class Device:
    """An app registration (``azp``) and the object id (``oid``) of one device."""

    app: str
    oid: str
    roles: tuple[str, ...] = ("Telemetry.Write",)

    @property
    def prefix(self) -> str:
        return f"t/{self.app}/{self.oid}"


APP_A = "0f6a3c1e-52b5-4f0e-9a53-1d9d1a4c7a01"
APP_B = "b3d1a2c4-8e7f-4a6b-9c5d-2e1f0a9b8c02"
A1 = Device(
    APP_A, "11111111-aaaa-4aaa-8aaa-000000000001", ("Telemetry.Write", "Alerts.Read")
)
A2 = Device(APP_A, "11111111-aaaa-4aaa-8aaa-000000000002")
B1 = Device(APP_B, "22222222-bbbb-4bbb-8bbb-000000000001")
B2 = Device(APP_B, "22222222-bbbb-4bbb-8bbb-000000000002")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    key: jwk.RSAKey
    kid: str
    jwk_entry: dict[str, Any]


def make_signing_key() -> SigningKey:
    """Return an RSA key with a self-signed certificate and its JWKS entry."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(private_key, hashes.SHA256())
    )

    der = certificate.public_bytes(serialization.Encoding.DER)
    # The kid is the certificate's x5t: its base64url SHA-1 thumbprint.
    kid = b64url(hashlib.sha1(der).digest())

    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = jwk.RSAKey.import_key(pem)
    entry = {
        **key.as_dict(private=False),
        "use": "sig",
        "kid": kid,
        "x5t": kid,
        "x5c": [base64.b64encode(der).decode()],
        "issuer": ISSUER,
    }
    return SigningKey(key, kid, entry)


def entra_token(signing: SigningKey, device: Device, **overrides: Any) -> str:
    """Return an app-only Entra v2 access token for ``device``."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": API_APP,
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "aio": b64url(uuid.uuid4().bytes * 2),
        "azp": device.app,
        "azpacr": "1",
        "idtyp": "app",
        "oid": device.oid,
        "rh": "0." + b64url(uuid.uuid4().bytes * 3),
        "roles": list(device.roles),
        "sub": device.oid,
        "tid": TENANT,
        "uti": b64url(uuid.uuid4().bytes),
        "ver": "2.0",
    }
    claims.update(overrides)
    header = {"typ": "JWT", "alg": "RS256", "kid": signing.kid}
    return jwt.encode(header, claims, signing.key)


@pytest.fixture(scope="module")
def signing() -> SigningKey:
    return make_signing_key()


@pytest.fixture(scope="module")
def broker(signing: SigningKey) -> Iterator[BrokerProcess]:
    with JWKSServer({"keys": [signing.jwk_entry]}) as keys:
        env = {
            "JWT_ENTRA_ID_TENANT_ID": TENANT,
            "JWT_JWKS_URL": keys.url,
            "JWT_AUDIENCE": API_APP,
            "JWT_PRINCIPAL_CLAIM": "oid",
            "JWT_ORGANIZATION_CLAIM": "azp",
            "JWT_GROUPS_CLAIM_NAME": "roles",
            "MQTTAUTH_ACL_RULES": ACL_RULES,
        }
        with start_broker(
            "--authenticator", "jwt", "--authorizer", "acl-file", env=env
        ) as running:
            running.wait_for_log(r"JWKS from \S+ fetched")
            yield running


def args(broker: BrokerProcess, token: str, *extra: str) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(broker.port), "-u", "JWT", "-P", token, *extra]


def test_issuer_derived_from_tenant(broker: BrokerProcess) -> None:
    assert f"JWT_EXPECTED_ISSUER: {ISSUER}" in broker.log()


@pytest.mark.parametrize("device", [A1, A2, B1, B2], ids=["a1", "a2", "b1", "b2"])
def test_device_uses_own_prefix(
    broker: BrokerProcess, signing: SigningKey, device: Device
) -> None:
    token = entra_token(signing, device)
    topic = f"{device.prefix}/telemetry"
    with MosquittoSub(
        args(broker, token, "-t", f"{device.prefix}/#", "-v", "-C", "1")
    ) as sub:
        assert sub.wait_subscribed() == [0]
        published = mosquitto_pub(
            args(broker, token, "-t", topic, "-m", "42", "-q", "1")
        )
        assert published.returncode == 0, published.stderr
        assert sub.wait_message() == f"{topic} 42"


@pytest.mark.parametrize(
    ("device", "other"),
    [(A1, A2), (A2, A1), (A1, B1), (B1, A1), (B2, B1), (B1, A2)],
    ids=["a1-a2", "a2-a1", "a1-b1", "b1-a1", "b2-b1", "b1-a2"],
)
def test_other_prefix_subscribe_denied(
    broker: BrokerProcess, signing: SigningKey, device: Device, other: Device
) -> None:
    token = entra_token(signing, device)
    with MosquittoSub(args(broker, token, "-t", f"{other.prefix}/#")) as sub:
        assert sub.wait_subscribed() == [128]


@pytest.mark.parametrize(
    "topic_filter", ["t/#", f"t/{APP_A}/#", "t/+/+/telemetry", "#"]
)
def test_wide_filter_denied(
    broker: BrokerProcess, signing: SigningKey, topic_filter: str
) -> None:
    token = entra_token(signing, A1)
    with MosquittoSub(args(broker, token, "-t", topic_filter, "-V", "mqttv5")) as sub:
        assert sub.wait_subscribed() == [0x87]


@pytest.mark.parametrize(
    ("device", "other"), [(A1, A2), (B1, A1)], ids=["a1-a2", "b1-a1"]
)
def test_other_prefix_publish_dropped(
    broker: BrokerProcess, signing: SigningKey, device: Device, other: Device
) -> None:
    intruder = entra_token(signing, device)
    owner = entra_token(signing, other)
    with MosquittoSub(args(broker, owner, "-t", f"{other.prefix}/#", "-v")) as sub:
        assert sub.wait_subscribed() == [0]
        # MQTT 3.1.1 has no negative PUBACK: the broker acknowledges the
        # denied QoS 1 message and drops it.
        denied = mosquitto_pub(
            args(
                broker, intruder, "-t", f"{other.prefix}/cmd", "-m", "forged", "-q", "1"
            )
        )
        assert denied.returncode == 0, denied.stderr
        control = mosquitto_pub(
            args(broker, owner, "-t", f"{other.prefix}/cmd", "-m", "genuine", "-q", "1")
        )
        assert control.returncode == 0, control.stderr
        assert sub.wait_message() == f"{other.prefix}/cmd genuine"


def test_other_prefix_publish_v5_reason(
    broker: BrokerProcess, signing: SigningKey
) -> None:
    token = entra_token(signing, A1)
    denied = mosquitto_pub(
        args(
            broker,
            token,
            "-t",
            f"{A2.prefix}/cmd",
            "-m",
            "x",
            "-q",
            "1",
            "-V",
            "mqttv5",
        )
    )
    assert "Not authorized" in denied.stderr


def test_role_grants_alerts(broker: BrokerProcess, signing: SigningKey) -> None:
    token = entra_token(signing, A1)
    with MosquittoSub(args(broker, token, "-t", "alerts/#")) as sub:
        assert sub.wait_subscribed() == [0]


def test_missing_role_denies_alerts(broker: BrokerProcess, signing: SigningKey) -> None:
    token = entra_token(signing, A2)
    with MosquittoSub(args(broker, token, "-t", "alerts/#")) as sub:
        assert sub.wait_subscribed() == [128]


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": f"api://{API_APP}"},
        {"iss": f"https://sts.windows.net/{TENANT}/"},
        {
            "iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
        },
        {"exp": int(time.time()) - 3600},
        {"oid": ""},
    ],
    ids=["api-uri-audience", "v1-issuer", "other-tenant", "expired", "empty-oid"],
)
def test_token_rejected(
    broker: BrokerProcess, signing: SigningKey, overrides: dict[str, Any]
) -> None:
    token = entra_token(signing, A1, **overrides)
    published = mosquitto_pub(args(broker, token, "-t", f"{A1.prefix}/x", "-m", "x"))
    assert published.returncode != 0
    assert "Connection Refused" in published.stderr
