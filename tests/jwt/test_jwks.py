"""The JWKS key source over real HTTP on loopback, with time on a Clock.

The JWKS server is twisted.web in this process; the authenticator's timers
(refresh floor, background refresh, retries, request deadline) run on a
``Clock`` that the tests advance, while HTTP runs on the real reactor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from joserfc import jwk
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock, deferLater

from mqttauth.auth.interfaces import AuthenticationError, AuthRequest, AuthSuccess
from mqttauth.jwt.authenticator import (
    JWKS_CACHE_FILE,
    JWTAuthenticator,
    make_http_client,
)
from mqttauth.jwt.jwks import JWKSKeySource, cache_max_age
from mqttauth.jwt.settings import OPTIONS, parse_settings
from mqttauth.mqtt.constants import ReasonCode
from tests.jwt.conftest import AUDIENCE, ISSUER, NOW, CapturedLog, token
from tests.support.jwks import JWKSServer, public_jwk


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the real reactor run until ``predicate()`` is true, or fail."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not met within the deadline")
        await deferLater(reactor, 0.01, lambda: None)


def settings_for(url: str, data_dir: str | None = None, **env: Any) -> Any:
    env.setdefault("JWT_EXPECTED_ISSUER", ISSUER)
    env.setdefault("JWT_AUDIENCE", AUDIENCE)
    by_env = {option.env: option for option in OPTIONS}
    values: dict[str, Any] = {"data_dir": data_dir, "jwt_jwks_url": url}
    for name, raw in env.items():
        option = by_env[name]
        values[option.name.replace("-", "_")] = option.coerce(raw)
    return parse_settings(values)


def request_for(text: str, client_id: str = "client-1") -> AuthRequest:
    return AuthRequest(client_id, 5, "127.0.0.1:1", method="JWT", data=text.encode())


async def outcome(result: Any) -> Any:
    """Return the AuthSuccess or the AuthenticationError of ``authenticate``."""
    if isinstance(result, Deferred):
        try:
            return await result
        except AuthenticationError as error:
            return error
    return result


def authenticate(authenticator: JWTAuthenticator, text: str) -> Any:
    try:
        return authenticator.authenticate(request_for(text))
    except AuthenticationError as error:
        return error


class Harness:
    """A JWKS server, a Clock at NOW and authenticators to stop afterwards."""

    def __init__(self) -> None:
        self.server = JWKSServer(reactor)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.started: list[JWTAuthenticator] = []

    def authenticator(
        self, data_dir: str | None = None, **env: Any
    ) -> JWTAuthenticator:
        settings = settings_for(self.server.url, data_dir, **env)
        authenticator = JWTAuthenticator(
            settings, self.clock, make_http_client(reactor)
        )
        authenticator.startService()
        self.started.append(authenticator)
        return authenticator

    async def started_with_keys(self, **env: Any) -> JWTAuthenticator:
        authenticator = self.authenticator(**env)
        await wait_until(lambda: idle(source_of(authenticator)))
        return authenticator

    async def stop(self) -> None:
        for authenticator in self.started:
            if authenticator.running:
                await maybe_deferred(authenticator.stopService())
        await maybe_deferred(self.server.stop())


async def maybe_deferred(result: Deferred[Any] | None) -> None:
    if result is not None:
        await result


def source_of(authenticator: JWTAuthenticator) -> JWKSKeySource:
    assert authenticator.key_source is not None
    return authenticator.key_source


def idle(source: JWKSKeySource) -> bool:
    return source.fetch_count > 0 and source._in_flight is None


@pytest.fixture
def harness(rsa_key: jwk.RSAKey) -> Iterator[Harness]:
    harness = Harness()
    harness.server.set_keys([public_jwk(rsa_key, "k1")])
    yield harness
    pytest_twisted.blockon(Deferred.fromCoroutine(harness.stop()))


# --- start-up and lookups ---


@pytest_twisted.ensureDeferred
async def test_start_fetches_keys(harness: Harness) -> None:
    authenticator = await harness.started_with_keys()
    assert source_of(authenticator).key_ring is not None


@pytest_twisted.ensureDeferred
async def test_known_kid_answers_without_deferred(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    assert isinstance(authenticate(authenticator, token(rsa_key)), AuthSuccess)


@pytest_twisted.ensureDeferred
async def test_known_kid_sends_no_request(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    for _ in range(5):
        authenticate(authenticator, token(rsa_key))
    assert harness.server.requests == 1


# --- rotation ---


@pytest_twisted.ensureDeferred
async def test_rotated_key_accepted_after_one_refresh(
    harness: Harness, rsa_key: jwk.RSAKey, other_rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.set_keys(
        [public_jwk(rsa_key, "k1"), public_jwk(other_rsa_key, "k2")]
    )
    result = await outcome(authenticate(authenticator, token(other_rsa_key, kid="k2")))
    assert isinstance(result, AuthSuccess)
    assert harness.server.requests == 2


@pytest_twisted.ensureDeferred
async def test_withdrawn_key_rejected_even_if_cached(
    harness: Harness, rsa_key: jwk.RSAKey, other_rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    old = token(rsa_key)
    assert isinstance(authenticate(authenticator, old), AuthSuccess)
    harness.server.set_keys([public_jwk(other_rsa_key, "k2")])
    await outcome(authenticate(authenticator, token(other_rsa_key, kid="k2")))
    result = await outcome(authenticate(authenticator, old))
    assert isinstance(result, AuthenticationError)
    assert result.reason == "unknown_key"


@pytest_twisted.ensureDeferred
async def test_rotation_logged(
    harness: Harness, other_rsa_key: jwk.RSAKey, captured_log: CapturedLog
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.set_keys([public_jwk(other_rsa_key, "k2")])
    await outcome(authenticate(authenticator, token(other_rsa_key, kid="k2")))
    assert captured_log.matching("added kid k2, removed kid k1")


# --- unknown kids: the floor and the shared fetch ---


@pytest_twisted.ensureDeferred
async def test_unknown_kid_flood_one_request_per_floor(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    results = [
        await outcome(authenticate(authenticator, token(rsa_key, kid=f"made-up-{n}")))
        for n in range(50)
    ]
    assert harness.server.requests == 2
    assert all(result.reason == "unknown_key" for result in results)


@pytest_twisted.ensureDeferred
async def test_unknown_kid_floor_holds_for_interval(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    await outcome(authenticate(authenticator, token(rsa_key, kid="x-0")))
    harness.clock.advance(59)
    for n in range(20):
        await outcome(authenticate(authenticator, token(rsa_key, kid=f"x-{n + 1}")))
    assert harness.server.requests == 2


@pytest_twisted.ensureDeferred
async def test_unknown_kid_refresh_again_after_floor(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    await outcome(authenticate(authenticator, token(rsa_key, kid="x-0")))
    harness.clock.advance(60)
    for n in range(20):
        await outcome(authenticate(authenticator, token(rsa_key, kid=f"x-{n + 1}")))
    assert harness.server.requests == 3


@pytest_twisted.ensureDeferred
async def test_floor_is_a_setting(harness: Harness, rsa_key: jwk.RSAKey) -> None:
    authenticator = await harness.started_with_keys(JWT_JWKS_MIN_REFRESH_INTERVAL="5")
    await outcome(authenticate(authenticator, token(rsa_key, kid="x-0")))
    harness.clock.advance(5)
    await outcome(authenticate(authenticator, token(rsa_key, kid="x-1")))
    assert harness.server.requests == 3


@pytest_twisted.ensureDeferred
async def test_unknown_kid_within_floor_rejected_at_once(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    await outcome(authenticate(authenticator, token(rsa_key, kid="x-0")))
    result = authenticate(authenticator, token(rsa_key, kid="x-1"))
    assert isinstance(result, AuthenticationError)


@pytest_twisted.ensureDeferred
async def test_burst_of_unknown_kid_shares_one_fetch(
    harness: Harness, rsa_key: jwk.RSAKey, other_rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.set_keys(
        [public_jwk(rsa_key, "k1"), public_jwk(other_rsa_key, "k2")]
    )
    harness.server.hold()
    pending = [
        authenticator.authenticate(
            request_for(token(other_rsa_key, kid="k2"), f"c-{n}")
        )
        for n in range(25)
    ]
    await wait_until(lambda: harness.server.requests == 2)
    harness.server.release()
    results = await gatherResults(pending)
    assert all(isinstance(result, AuthSuccess) for result in results)
    assert harness.server.requests == 2


@pytest_twisted.ensureDeferred
async def test_burst_of_different_unknown_kids_shares_one_fetch(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.hold()
    pending = [
        authenticator.authenticate(request_for(token(rsa_key, kid=f"u-{n}")))
        for n in range(25)
    ]
    await wait_until(lambda: harness.server.requests == 2)
    harness.server.release()
    results = [await outcome(item) for item in pending]
    assert all(result.reason == "unknown_key" for result in results)
    assert harness.server.requests == 2


@pytest_twisted.ensureDeferred
async def test_cancelled_waiter_leaves_fetch_running(
    harness: Harness, rsa_key: jwk.RSAKey, other_rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.set_keys([public_jwk(other_rsa_key, "k2")])
    harness.server.hold()
    first = authenticator.authenticate(request_for(token(other_rsa_key, kid="k2"), "a"))
    second = authenticator.authenticate(
        request_for(token(other_rsa_key, kid="k2"), "b")
    )
    await wait_until(lambda: harness.server.requests == 2)
    first.cancel()
    first.addErrback(lambda _: None)
    harness.server.release()
    assert isinstance(await second, AuthSuccess)


# --- bad refreshes keep the keys ---


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 200),
        (b'{"keys": []}', 200),
        (b'{"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0"}]}', 200),
        (b'{"error": "down"}', 503),
        (b"", 302),
    ],
    ids=["not-json", "empty", "only-secret", "status-503", "redirect"],
)
@pytest_twisted.ensureDeferred
async def test_bad_refresh_keeps_keys(
    harness: Harness, rsa_key: jwk.RSAKey, body: bytes, status: int
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.set_body(body, status)
    await outcome(authenticate(authenticator, token(rsa_key, kid="unknown")))
    assert isinstance(authenticate(authenticator, token(rsa_key)), AuthSuccess)


@pytest_twisted.ensureDeferred
async def test_bad_refresh_logged(
    harness: Harness, rsa_key: jwk.RSAKey, captured_log: CapturedLog
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.set_body(b'{"keys": []}')
    await outcome(authenticate(authenticator, token(rsa_key, kid="unknown")))
    assert captured_log.matching("no usable key")


@pytest_twisted.ensureDeferred
async def test_oversized_document_rejected(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.set_body(b'{"keys": [], "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    await outcome(authenticate(authenticator, token(rsa_key, kid="unknown")))
    assert isinstance(authenticate(authenticator, token(rsa_key)), AuthSuccess)


@pytest_twisted.ensureDeferred
async def test_server_down_keeps_keys(harness: Harness, rsa_key: jwk.RSAKey) -> None:
    authenticator = await harness.started_with_keys()
    await harness.server.go_down()
    await outcome(authenticate(authenticator, token(rsa_key, kid="unknown")))
    assert isinstance(authenticate(authenticator, token(rsa_key)), AuthSuccess)


@pytest_twisted.ensureDeferred
async def test_slow_server_times_out(
    harness: Harness, rsa_key: jwk.RSAKey, captured_log: CapturedLog
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.hold()
    pending = authenticator.authenticate(request_for(token(rsa_key, kid="unknown")))
    await wait_until(lambda: harness.server.requests == 2)
    harness.clock.advance(10)
    result = await outcome(pending)
    assert result.reason == "unknown_key"
    assert captured_log.matching("no complete response within 10 s")


# --- background refresh ---


@pytest_twisted.ensureDeferred
async def test_background_refresh_after_interval(harness: Harness) -> None:
    await harness.started_with_keys()
    harness.clock.advance(3599)
    assert harness.server.requests == 1
    harness.clock.advance(1)
    await wait_until(lambda: harness.server.requests == 2)


@pytest_twisted.ensureDeferred
async def test_background_refresh_honours_max_age(harness: Harness) -> None:
    harness.server.set_cache_control("public, max-age=120")
    await harness.started_with_keys()
    harness.clock.advance(119)
    assert harness.server.requests == 1
    harness.clock.advance(1)
    await wait_until(lambda: harness.server.requests == 2)


@pytest_twisted.ensureDeferred
async def test_background_refresh_floor_bounds_max_age(harness: Harness) -> None:
    harness.server.set_cache_control("max-age=5")
    await harness.started_with_keys()
    harness.clock.advance(59)
    assert harness.server.requests == 1


@pytest_twisted.ensureDeferred
async def test_background_refresh_interval_bounds_max_age(harness: Harness) -> None:
    harness.server.set_cache_control("max-age=86400")
    await harness.started_with_keys()
    harness.clock.advance(3600)
    await wait_until(lambda: harness.server.requests == 2)


@pytest_twisted.ensureDeferred
async def test_background_refresh_picks_up_rotation(
    harness: Harness, other_rsa_key: jwk.RSAKey
) -> None:
    authenticator = await harness.started_with_keys()
    harness.server.set_keys([public_jwk(other_rsa_key, "k2")])
    harness.clock.advance(3600)
    await wait_until(lambda: idle(source_of(authenticator)))
    later = token(other_rsa_key, kid="k2", exp=NOW + 7200)
    assert isinstance(authenticate(authenticator, later), AuthSuccess)


@pytest_twisted.ensureDeferred
async def test_failed_refresh_retried_with_backoff(harness: Harness) -> None:
    authenticator = await harness.started_with_keys()
    source = source_of(authenticator)
    harness.server.set_body(b"", 500)
    harness.clock.advance(3600)
    await wait_until(lambda: idle(source) and source.fetch_count == 2)
    for delay, count in ((1, 3), (2, 4), (4, 5)):
        harness.clock.advance(delay - 0.001)
        assert source.fetch_count == count - 1
        harness.clock.advance(0.001)
        await wait_until(
            lambda count=count: idle(source) and source.fetch_count == count
        )


@pytest_twisted.ensureDeferred
async def test_stop_cancels_timers(harness: Harness) -> None:
    authenticator = await harness.started_with_keys()
    await maybe_deferred(authenticator.stopService())
    assert harness.clock.getDelayedCalls() == []


# --- start-up while the identity provider is down ---


@pytest_twisted.ensureDeferred
async def test_start_with_server_down_server_unavailable(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    await harness.server.go_down()
    authenticator = await harness.started_with_keys()
    result = await outcome(authenticate(authenticator, token(rsa_key)))
    assert result.reason_code == ReasonCode.SERVER_UNAVAILABLE
    assert "not available yet" in result.reason_string


@pytest_twisted.ensureDeferred
async def test_start_with_server_down_unavailable_on_legacy(
    harness: Harness, rsa_key: jwk.RSAKey
) -> None:
    await harness.server.go_down()
    authenticator = await harness.started_with_keys()
    request = AuthRequest("c", 4, "p", username="JWT", password=token(rsa_key).encode())
    try:
        result = await outcome(authenticator.authenticate(request))
    except AuthenticationError as error:
        result = error
    assert result.reason_code == ReasonCode.SERVER_UNAVAILABLE


@pytest_twisted.ensureDeferred
async def test_start_with_server_down_keys_arrive(
    harness: Harness, rsa_key: jwk.RSAKey, captured_log: CapturedLog
) -> None:
    await harness.server.go_down()
    authenticator = await harness.started_with_keys()
    source = source_of(authenticator)
    assert captured_log.matching("JWKS fetch from")
    harness.server.come_up()
    harness.clock.advance(1)
    await wait_until(lambda: source.key_ring is not None)
    assert isinstance(authenticate(authenticator, token(rsa_key)), AuthSuccess)


@pytest_twisted.ensureDeferred
async def test_start_with_server_down_retries_back_off(harness: Harness) -> None:
    await harness.server.go_down()
    authenticator = await harness.started_with_keys()
    source = source_of(authenticator)
    delays = []
    for count in range(2, 10):
        delays.append(
            harness.clock.getDelayedCalls()[0].getTime() - harness.clock.seconds()
        )
        harness.clock.advance(delays[-1])
        await wait_until(
            lambda count=count: idle(source) and source.fetch_count == count
        )
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]


# --- the saved JWKS document ---


@pytest_twisted.ensureDeferred
async def test_saved_jwks_used_when_server_down(
    harness: Harness, rsa_key: jwk.RSAKey, tmp_path: Path
) -> None:
    first = harness.authenticator(data_dir=str(tmp_path))
    await wait_until(lambda: idle(source_of(first)))
    await maybe_deferred(first.stopService())
    await harness.server.go_down()
    second = harness.authenticator(data_dir=str(tmp_path))
    assert isinstance(authenticate(second, token(rsa_key)), AuthSuccess)


@pytest_twisted.ensureDeferred
async def test_saved_jwks_records_url(harness: Harness, tmp_path: Path) -> None:
    first = harness.authenticator(data_dir=str(tmp_path))
    await wait_until(lambda: idle(source_of(first)))
    saved = json.loads((tmp_path / JWKS_CACHE_FILE).read_text())
    assert saved["url"] == harness.server.url


@pytest_twisted.ensureDeferred
async def test_saved_jwks_of_other_url_ignored(
    harness: Harness, rsa_key: jwk.RSAKey, tmp_path: Path
) -> None:
    record = {
        "url": "https://other.example/keys",
        "document": {"keys": [public_jwk(rsa_key, "k1")]},
    }
    (tmp_path / JWKS_CACHE_FILE).write_text(json.dumps(record))
    await harness.server.go_down()
    authenticator = harness.authenticator(data_dir=str(tmp_path))
    assert source_of(authenticator).key_ring is None


@pytest_twisted.ensureDeferred
async def test_corrupt_saved_jwks_ignored(harness: Harness, tmp_path: Path) -> None:
    (tmp_path / JWKS_CACHE_FILE).write_text("{broken")
    authenticator = await harness.started_with_keys(data_dir=str(tmp_path))
    assert source_of(authenticator).key_ring is not None


@pytest_twisted.ensureDeferred
async def test_bad_refresh_keeps_saved_document(
    harness: Harness, tmp_path: Path
) -> None:
    first = harness.authenticator(data_dir=str(tmp_path))
    await wait_until(lambda: idle(source_of(first)))
    before = (tmp_path / JWKS_CACHE_FILE).read_bytes()
    harness.server.set_body(b'{"keys": []}')
    harness.clock.advance(3600)
    await wait_until(
        lambda: source_of(first).fetch_count == 2 and idle(source_of(first))
    )
    assert (tmp_path / JWKS_CACHE_FILE).read_bytes() == before


@pytest_twisted.ensureDeferred
async def test_unwritable_data_dir_logged(
    harness: Harness, tmp_path: Path, captured_log: CapturedLog
) -> None:
    missing = tmp_path / "absent"
    authenticator = harness.authenticator(data_dir=str(missing))
    await wait_until(lambda: idle(source_of(authenticator)))
    assert captured_log.matching("Cannot save JWKS")
    assert not os.path.exists(missing)


# --- Cache-Control parsing ---


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("public", None),
        ("max-age=300", 300.0),
        ("public, max-age=86400, must-revalidate", 86400.0),
        ('max-age="60"', 60.0),
        ("no-cache", 0.0),
        ("private, no-store", 0.0),
        ("s-maxage=5", None),
    ],
)
def test_cache_max_age(header: str | None, expected: float | None) -> None:
    assert cache_max_age(header) == expected


# --- HTTPS ---


def https_server(harness: Harness, pki: Any) -> tuple[Any, str]:
    from twisted.internet.endpoints import serverFromString

    endpoint = serverFromString(
        reactor,
        f"ssl:0:interface=127.0.0.1:privateKey={pki.server_key}:certKey={pki.server_cert}",
    )
    return endpoint, "/keys"


@pytest_twisted.ensureDeferred
async def test_https_jwks_with_trusted_ca(
    harness: Harness, rsa_key: jwk.RSAKey, tmp_path: Path
) -> None:
    from treq.client import HTTPClient
    from twisted.internet.ssl import Certificate
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

    from tests.support.tls import make_pki

    pki = make_pki(tmp_path)
    endpoint, path = https_server(harness, pki)
    port = await endpoint.listen(harness.server.site)
    try:
        url = f"https://localhost:{port.getHost().port}{path}"
        trust = Certificate.loadPEM(pki.ca_cert.read_bytes())
        agent = Agent(
            reactor,
            contextFactory=BrowserLikePolicyForHTTPS(trustRoot=trust),
            pool=HTTPConnectionPool(reactor, persistent=False),
        )
        authenticator = JWTAuthenticator(
            settings_for(url), harness.clock, HTTPClient(agent)
        )
        authenticator.startService()
        harness.started.append(authenticator)
        await wait_until(lambda: idle(source_of(authenticator)))
        assert isinstance(authenticate(authenticator, token(rsa_key)), AuthSuccess)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_https_jwks_untrusted_certificate_rejected(
    harness: Harness, tmp_path: Path, captured_log: CapturedLog
) -> None:
    from tests.support.tls import make_pki

    pki = make_pki(tmp_path)
    endpoint, path = https_server(harness, pki)
    port = await endpoint.listen(harness.server.site)
    try:
        url = f"https://localhost:{port.getHost().port}{path}"
        settings = settings_for(url)
        authenticator = JWTAuthenticator(
            settings, harness.clock, make_http_client(reactor)
        )
        authenticator.startService()
        harness.started.append(authenticator)
        await wait_until(lambda: idle(source_of(authenticator)))
        assert source_of(authenticator).key_ring is None
        [message] = captured_log.matching("JWKS fetch from https://localhost")
        assert "certificate verify failed" in message
    finally:
        await port.stopListening()
