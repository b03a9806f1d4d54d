"""The JWKS key source: fetches an identity provider's key set with treq and
keeps it fresh.

Rules, in the order a reader meets them in the code:

- Keys are held as one :class:`~mqttauth.jwt.keys.KeyRing`, looked up by
  ``kid``.  A document that is not a JWKS, or has no usable key, never
  replaces the ring; a failed fetch keeps it too, and both are logged.
- A token with an unknown ``kid`` may trigger a refresh
  (:meth:`JWKSKeySource.refresh_for_unknown_kid`).  Every caller that asks
  while a fetch is in flight shares that fetch, and two refreshes triggered
  this way start at least ``min_refresh_interval`` seconds apart, so a flood
  of made-up ``kid`` values costs the identity provider one request per
  interval.
- In the background the set is refreshed every ``refresh_interval`` seconds,
  sooner when the response's ``Cache-Control: max-age`` says so, but never
  more often than ``min_refresh_interval`` (at least one second).
- A failed fetch is retried with exponential back-off from one second up to
  ``min_refresh_interval``.
- The last good document is written to ``cache_file`` and read at start-up,
  so a restart while the identity provider is down still has keys.

Timers use the ``clock`` given, so tests drive them with
:class:`twisted.internet.task.Clock` while HTTP runs over a real reactor.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from mqttauth.jwt.keys import KeyLoadError, KeyRing, parse_jwks, parse_jwks_document

#: Largest JWKS document read, in bytes (after content decoding).
MAX_DOCUMENT_SIZE = 1024 * 1024
#: First retry delay after a failed fetch, in seconds; it doubles per failure.
INITIAL_RETRY_DELAY = 1.0
#: Shortest background refresh interval in seconds, whatever max-age requests.
MIN_BACKGROUND_INTERVAL = 1.0
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-cache|no-store)(?:$|[,\s=])", re.IGNORECASE)


class JWKSFetchError(Exception):
    """A JWKS fetch that gave no usable document; the message explains why."""


def cache_max_age(cache_control: str | None) -> float | None:
    """Return the freshness lifetime a ``Cache-Control`` header grants, in
    seconds: its ``max-age``, 0 for ``no-cache``/``no-store``, else ``None``."""
    if not cache_control:
        return None
    if _NO_CACHE.search(cache_control):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


class _LimitedBody(Protocol):
    """Collects a response body, aborting the transfer past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.finished: Deferred[bytes] = Deferred(self._cancel)

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.abort()
            self.finished.errback(
                JWKSFetchError(f"document is larger than {self.limit} bytes")
            )
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(reason)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def _cancel(self, _: Deferred[bytes]) -> None:
        self.abort()


class JWKSKeySource(Service):
    """Holds the keys of one JWKS URL; see the module docstring for the rules."""

    log = Logger()

    def __init__(
        self,
        clock: Any,
        url: str,
        http_client: Any,
        *,
        cache_file: str | None,
        min_refresh_interval: float = 60.0,
        refresh_interval: float = 3600.0,
        timeout: float = 10.0,
        on_keys_withdrawn: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        self.url = url
        self.http_client = http_client
        self.cache_file = cache_file
        self.min_refresh_interval = min_refresh_interval
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self.on_keys_withdrawn = on_keys_withdrawn
        #: The keys in force, or ``None`` until the first good document.
        self.key_ring: KeyRing | None = None
        #: Requests sent to the JWKS URL, for tests and diagnostics.
        self.fetch_count = 0
        self._document_digest: bytes | None = None
        self._in_flight: Deferred[None] | None = None
        self._waiters: list[Deferred[None]] = []
        self._last_on_demand: float | None = None
        self._timer: Any = None
        self._failures = 0

    # --- service lifecycle -------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._load_cache_file()
        self._start_fetch("start-up")

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._cancel_timer()
        if self._in_flight is not None:
            self._in_flight.cancel()
        return succeed(None)

    # --- what the authenticator calls ----------------------------------------

    def refresh_for_unknown_kid(self) -> Deferred[None] | None:
        """Start or join a refresh because a token names a key not held.

        Returns a Deferred that fires with ``None`` when the fetch in flight
        ends, whatever its outcome (check :attr:`key_ring` then), or ``None``
        when no fetch is in flight and the last refresh triggered this way
        started less than ``min_refresh_interval`` seconds ago.  Cancelling
        the returned Deferred leaves the shared fetch running.
        """
        if not self.running:
            return None
        if self._in_flight is None:
            now = self.clock.seconds()
            last = self._last_on_demand
            if last is not None and now - last < self.min_refresh_interval:
                return None
            self._last_on_demand = now
            self._start_fetch("unknown kid")
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    # --- fetching ------------------------------------------------------------

    def _start_fetch(self, trigger: str) -> None:
        if self._in_flight is not None or not self.running:
            return
        self._cancel_timer()
        self.fetch_count += 1
        self.log.debug(
            "Fetching JWKS from {url} ({trigger})", url=self.url, trigger=trigger
        )
        fetch = self._fetch()
        deadline = self.clock.callLater(self.timeout, fetch.cancel)
        self._in_flight = fetch

        def done(result: Any) -> None:
            timed_out = not deadline.active()
            if not timed_out:
                deadline.cancel()
            self._in_flight = None
            if isinstance(result, Failure):
                self._fetch_failed(result, timed_out=timed_out)
            self._wake_waiters()

        fetch.addBoth(done)

    def _fetch(self) -> Deferred[None]:
        request = self.http_client.get(
            self.url,
            headers={"Accept": ["application/jwk-set+json, application/json"]},
            allow_redirects=False,
            unbuffered=True,
        )
        body: _LimitedBody | None = None

        def read_body(response: Any) -> Any:
            nonlocal body
            if response.code != 200:
                _discard_body(response)
                raise JWKSFetchError(f"HTTP status {response.code}, expected 200")
            body = _LimitedBody(MAX_DOCUMENT_SIZE)
            response.deliverBody(body)
            cache_control = response.headers.getRawHeaders("cache-control") or []
            max_age = cache_max_age(", ".join(cache_control))
            return body.finished.addCallback(lambda data: self._install(data, max_age))

        def cancel_body(failure: Failure) -> Failure:
            if body is not None and not body.finished.called:
                body.finished.cancel()
            return failure

        result: Deferred[None] = request.addCallback(read_body).addErrback(cancel_body)
        return result

    def _install(self, data: bytes, max_age: float | None) -> None:
        try:
            parsed = parse_jwks(data)
        except KeyLoadError as error:
            raise JWKSFetchError(str(error)) from None
        for line in parsed.skipped:
            self.log.warn(
                "JWKS from {url}: skipped {detail}", url=self.url, detail=line
            )
        digest = hashlib.sha256(data).digest()
        self._replace_ring(parsed.ring, source="fetched")
        if digest != self._document_digest:
            self._document_digest = digest
            self._write_cache_file(data)
        self._failures = 0
        self._schedule(self._background_delay(max_age), "background")

    def _fetch_failed(self, failure: Failure, *, timed_out: bool) -> None:
        if not self.running:
            return
        if timed_out:
            reason = f"no complete response within {self.timeout:g} s"
        else:
            reason = _describe_failure(failure)
        delay = min(
            INITIAL_RETRY_DELAY * 2**self._failures,
            max(self.min_refresh_interval, INITIAL_RETRY_DELAY),
        )
        self._failures += 1
        held = len(self.key_ring) if self.key_ring is not None else 0
        self.log.error(
            "JWKS fetch from {url} failed: {reason}; keeping {held} key(s), "
            "retry {failures} in {delay:g} s",
            url=self.url,
            reason=reason,
            held=held,
            failures=self._failures,
            delay=delay,
        )
        self._schedule(delay, "retry")

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    # --- keys ------------------------------------------------------------------

    def _replace_ring(self, ring: KeyRing, *, source: str) -> None:
        old = self.key_ring
        old_keys = _fingerprints(old)
        new_keys = _fingerprints(ring)
        self.key_ring = ring
        added = sorted(kid for kid, _ in new_keys - old_keys)
        removed = sorted(kid for kid, _ in old_keys - new_keys)
        if old is None:
            self.log.info(
                "JWKS from {url} {source}: {count} key(s), kid {kids}",
                url=self.url,
                source=source,
                count=len(ring),
                kids=", ".join(sorted(kid for kid, _ in new_keys)),
            )
        elif added or removed:
            self.log.info(
                "JWKS from {url} rotated: added kid {added}, removed kid {removed}",
                url=self.url,
                added=", ".join(added) or "(none)",
                removed=", ".join(removed) or "(none)",
            )
        if removed and self.on_keys_withdrawn is not None:
            self.on_keys_withdrawn()

    def _background_delay(self, max_age: float | None) -> float:
        lower = max(self.min_refresh_interval, MIN_BACKGROUND_INTERVAL)
        if max_age is None:
            return max(self.refresh_interval, lower)
        return max(lower, min(max_age, self.refresh_interval))

    def _schedule(self, delay: float, trigger: str) -> None:
        self._cancel_timer()
        if self.running:
            self._timer = self.clock.callLater(delay, self._timer_fired, trigger)

    def _timer_fired(self, trigger: str) -> None:
        self._timer = None
        self._start_fetch(trigger)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # --- the cache file ----------------------------------------------------------

    def _load_cache_file(self) -> None:
        if self.cache_file is None or not os.path.exists(self.cache_file):
            return
        try:
            with open(self.cache_file, "rb") as file:
                saved = json.load(file)
            if not isinstance(saved, dict) or saved.get("url") != self.url:
                self.log.info(
                    "Ignoring saved JWKS {path}: it is for another URL",
                    path=self.cache_file,
                )
                return
            parsed = parse_jwks_document(saved.get("document"), allow_secrets=False)
        except (OSError, ValueError) as error:
            self.log.warn(
                "Ignoring saved JWKS {path}: {error}",
                path=self.cache_file,
                error=str(error),
            )
            return
        self._replace_ring(parsed.ring, source=f"loaded from {self.cache_file}")

    def _write_cache_file(self, data: bytes) -> None:
        if self.cache_file is None:
            return
        record = {"url": self.url, "document": json.loads(data)}
        temporary = f"{self.cache_file}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump(record, file)
            os.replace(temporary, self.cache_file)
        except OSError as error:
            self.log.error(
                "Cannot save JWKS to {path}: {error}; a restart while {url} is down "
                "will have no keys",
                path=self.cache_file,
                error=str(error),
                url=self.url,
            )


def _describe_failure(failure: Failure) -> str:
    """Return the failure's message, unwrapping twisted.web's lists of reasons."""
    reasons = getattr(failure.value, "reasons", None)
    if isinstance(reasons, list) and reasons:
        return "; ".join(_describe_failure(reason) for reason in reasons)
    return failure.getErrorMessage() or type(failure.value).__name__


def _discard_body(response: Any) -> None:
    body = _LimitedBody(0)
    body.finished.addErrback(lambda _: None)
    response.deliverBody(body)


def _fingerprints(ring: KeyRing | None) -> set[tuple[str, str]]:
    if ring is None:
        return set()
    return {(entry.kid or "(no kid)", entry.key.thumbprint()) for entry in ring.keys}
