"""The ``jwt`` authenticator: a JWT in the Password or the Authentication Data.

Three ways in, one validation:

- Legacy (MQTT 3.1.1 and 5.0): User Name ``JWT_MQTT_CONNECT_USERNAME``
  (default ``JWT``) and the token as Password.  A rejection is 0x86 Bad User
  Name or Password, which 3.1.1 clients see as return code 4, because the
  Password is the credential that failed.  A CONNECT with no credentials at all
  gets 0x87 Not authorized (return code 5).
- Enhanced Authentication (MQTT 5.0): an Authentication Method from
  ``JWT_AUTHENTICATION_METHODS`` with the token as Authentication Data.  A
  rejection is 0x87 Not authorized.
- Re-authentication (AUTH 0x19): the same as Enhanced Authentication, and
  0x87 too, which is also a valid DISCONNECT reason code (0x86 is not).

When the keys cannot be had yet (a JWKS URL that has not answered since
start-up), every flow gets 0x88 Server unavailable (3.1.1: return code 3):
the client's credentials were never judged.

The identity always comes from the token, never from the User Name, and its
expiry is the token's ``exp`` plus the leeway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from mqttauth.auth.interfaces import (
    AuthenticationError,
    AuthRequest,
    AuthSuccess,
    IAuthenticator,
    Identity,
)
from mqttauth.jwt.cache import VerifiedTokenCache, token_digest
from mqttauth.jwt.jwks import JWKSKeySource
from mqttauth.jwt.keys import KeyRing
from mqttauth.jwt.settings import ANY_USERNAME, JWTSettings, parse_settings
from mqttauth.jwt.validation import (
    ParsedToken,
    TokenError,
    TokenValidator,
    VerifiedToken,
)
from mqttauth.mqtt.constants import ReasonCode

#: Name of the saved JWKS document in the data directory.
JWKS_CACHE_FILE = "jwt-jwks-cache.json"
#: Rejections logged per :data:`REJECTION_LOG_WINDOW`; the rest are counted.
MAX_REJECTION_LOGS = 100
REJECTION_LOG_WINDOW = 10.0

_LEGACY = "password"
_ENHANCED = "enhanced"
_REAUTH = "re-authentication"


@implementer(IAuthenticator, IService)
class JWTAuthenticator(Service):
    """Authenticates MQTT clients with JWTs; see the module docstring.

    ``clock`` provides time and timers (the reactor in production).  With a
    JWKS URL, ``http_client`` is the treq ``HTTPClient`` used to fetch it, and
    the authenticator must be started (it is an ``IService``) to fetch keys.
    """

    log = Logger()

    def __init__(
        self, settings: JWTSettings, clock: Any, http_client: Any = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.methods: tuple[str, ...] = settings.methods
        self.validator = TokenValidator(settings.policy)
        self.cache = VerifiedTokenCache(settings.token_cache_size)
        self.key_source: JWKSKeySource | None = None
        if settings.jwks_url is not None:
            if http_client is None:
                raise ValueError("a JWKS URL needs an http_client")
            cache_file = (
                os.path.join(settings.data_dir, JWKS_CACHE_FILE)
                if settings.data_dir is not None
                else None
            )
            self.key_source = JWKSKeySource(
                clock,
                settings.jwks_url,
                http_client,
                cache_file=cache_file,
                min_refresh_interval=settings.jwks_min_refresh_interval,
                refresh_interval=settings.jwks_refresh_interval,
                timeout=settings.jwks_timeout,
                on_keys_withdrawn=self.cache.clear,
            )
        self._window_start = 0.0
        self._window_logged = 0
        self._window_suppressed = 0

    # --- lifecycle -------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        for setting, value in self.settings.describe():
            self.log.info("jwt {setting}: {value}", setting=setting, value=value)
        if self.settings.policy.issuer is None:
            self.log.warn(
                "jwt: JWT_EXPECTED_ISSUER is not set, so tokens of any issuer pass"
            )
        if not self.settings.policy.audiences:
            self.log.warn(
                "jwt: JWT_AUDIENCE is not set, so tokens for any audience pass"
            )
        if self.key_source is not None:
            if self.settings.data_dir is None:
                self.log.warn(
                    "jwt: no data directory, so the JWKS is not saved and a restart "
                    "while {url} is down has no keys",
                    url=self.settings.jwks_url,
                )
            self.key_source.startService()

    def stopService(self) -> Any:
        super().stopService()
        if self.key_source is not None and self.key_source.running:
            return self.key_source.stopService()
        return None

    # --- IAuthenticator ------------------------------------------------------------

    def authenticate(self, request: AuthRequest) -> AuthSuccess | Deferred[AuthSuccess]:
        """Decide ``request``; see :meth:`IAuthenticator.authenticate`.

        Returns an :class:`AuthSuccess` at once when the keys are at hand, and
        a Deferred only when a JWKS refresh is needed first.
        """
        flow, token = self._credential(request)
        now = self.clock.seconds()
        digest = token_digest(token)
        cached = self.cache.get(digest, now)
        if cached is not None:
            return self._accept(request, flow, cached)
        try:
            parsed = self.validator.parse(token)
        except TokenError as error:
            raise self._token_rejection(request, flow, error) from None

        ring = self._key_ring()
        if ring is not None and ring.knows(parsed.key_id):
            return self._verify(request, flow, parsed, digest, ring)
        if self.key_source is None:
            raise self._unknown_key(request, flow, parsed)
        waiting = self.key_source.refresh_for_unknown_kid()
        if waiting is None:
            if ring is None:
                raise self._unavailable(request, flow, parsed)
            raise self._unknown_key(request, flow, parsed)

        def refreshed(_: None) -> AuthSuccess:
            ring = self._key_ring()
            if ring is None:
                raise self._unavailable(request, flow, parsed)
            if not ring.knows(parsed.key_id):
                raise self._unknown_key(request, flow, parsed)
            return self._verify(request, flow, parsed, digest, ring)

        return waiting.addCallback(refreshed)

    # --- steps ---------------------------------------------------------------------

    def _credential(self, request: AuthRequest) -> tuple[str, bytes]:
        """Return the flow and the token, or raise for missing credentials."""
        if request.current is not None or request.method is not None:
            flow = _REAUTH if request.current is not None else _ENHANCED
            if request.method is None:
                raise self._rejection(
                    request,
                    flow,
                    ReasonCode.PROTOCOL_ERROR,
                    "no_method",
                    "re-authentication needs the Authentication Method of the CONNECT",
                )
            if request.method not in self.methods:
                raise self._rejection(
                    request,
                    flow,
                    ReasonCode.BAD_AUTHENTICATION_METHOD,
                    "bad_method",
                    f"Authentication Method {request.method!r} is not supported; "
                    f"use {', '.join(self.methods) or 'User Name and Password'}",
                )
            if not request.data:
                raise self._rejection(
                    request,
                    flow,
                    ReasonCode.NOT_AUTHORIZED,
                    "missing_token",
                    "Authentication Data must contain the JWT",
                )
            return flow, request.data

        expected = self.settings.connect_username
        if request.username is None and request.password is None:
            methods = " or ".join(repr(name) for name in self.methods)
            raise self._rejection(
                request,
                _LEGACY,
                ReasonCode.NOT_AUTHORIZED,
                "missing_token",
                f"a JWT is required: as Password with User Name {expected!r}"
                + (
                    f", or as Authentication Data with method {methods}"
                    if methods
                    else ""
                ),
            )
        if expected != ANY_USERNAME and request.username != expected:
            raise self._rejection(
                request,
                _LEGACY,
                ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                "wrong_user_name",
                f"User Name must be {expected!r} with the JWT as Password",
            )
        if not request.password:
            raise self._rejection(
                request,
                _LEGACY,
                ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                "missing_token",
                "Password must contain the JWT",
            )
        return _LEGACY, request.password

    def _key_ring(self) -> KeyRing | None:
        if self.key_source is not None:
            return self.key_source.key_ring
        return self.settings.key_ring

    def _verify(
        self,
        request: AuthRequest,
        flow: str,
        parsed: ParsedToken,
        digest: bytes,
        ring: KeyRing,
    ) -> AuthSuccess:
        candidates = ring.candidates(parsed.key_id, parsed.algorithm)
        if not candidates:
            error = TokenError(
                "key_mismatch",
                f"no key with kid {parsed.key_id!r} fits algorithm {parsed.algorithm}",
                parsed.key_id,
            )
            raise self._token_rejection(request, flow, error)
        try:
            verified = self.validator.verify(parsed, candidates, self.clock.seconds())
        except TokenError as error:
            raise self._token_rejection(request, flow, error) from None
        self.cache.put(digest, verified)
        return self._accept(request, flow, verified)

    def _accept(
        self, request: AuthRequest, flow: str, verified: VerifiedToken
    ) -> AuthSuccess:
        identity = Identity(
            principal=verified.principal,
            client_id=request.client_id,
            organization=verified.organization,
            groups=verified.groups,
            expires_at=verified.expires_at,
            attributes=verified.claims,
        )
        self.log.debug(
            "jwt accepted {flow} of {client_id}: principal {principal}, kid {kid}",
            flow=flow,
            client_id=request.client_id,
            principal=verified.principal,
            kid=verified.key_id,
        )
        return AuthSuccess(identity)

    def _unknown_key(
        self, request: AuthRequest, flow: str, parsed: ParsedToken
    ) -> AuthenticationError:
        if parsed.key_id is None:
            description = "token has no kid and no configured key fits it"
        else:
            description = f"no key with kid {parsed.key_id!r} is known"
        return self._token_rejection(
            request, flow, TokenError("unknown_key", description, parsed.key_id)
        )

    def _unavailable(
        self, request: AuthRequest, flow: str, parsed: ParsedToken
    ) -> AuthenticationError:
        return self._rejection(
            request,
            flow,
            ReasonCode.SERVER_UNAVAILABLE,
            "keys_unavailable",
            "the keys to check tokens are not available yet; try again later",
            key_id=parsed.key_id,
        )

    def _token_rejection(
        self, request: AuthRequest, flow: str, error: TokenError
    ) -> AuthenticationError:
        code = (
            ReasonCode.BAD_USER_NAME_OR_PASSWORD
            if flow == _LEGACY
            else ReasonCode.NOT_AUTHORIZED
        )
        return self._rejection(
            request, flow, code, error.reason, error.description, error.key_id
        )

    def _rejection(
        self,
        request: AuthRequest,
        flow: str,
        code: ReasonCode,
        reason: str,
        description: str,
        key_id: str | None = None,
    ) -> AuthenticationError:
        self._log_rejection(request, flow, code, reason, description, key_id)
        return AuthenticationError(code, description, reason, key_id=key_id)

    def _log_rejection(
        self,
        request: AuthRequest,
        flow: str,
        code: ReasonCode,
        reason: str,
        description: str,
        key_id: str | None,
    ) -> None:
        now = self.clock.seconds()
        if now - self._window_start >= REJECTION_LOG_WINDOW:
            if self._window_suppressed:
                self.log.info(
                    "jwt: {count} more rejections in {window:g} s were not logged",
                    count=self._window_suppressed,
                    window=REJECTION_LOG_WINDOW,
                )
            self._window_start = now
            self._window_logged = 0
            self._window_suppressed = 0
        if self._window_logged >= MAX_REJECTION_LOGS:
            self._window_suppressed += 1
            return
        self._window_logged += 1
        self.log.info(
            "jwt rejected {flow} of {client_id} from {peer}: {reason} "
            "(reason code 0x{code:02X}), kid {kid}: {description}",
            flow=flow,
            client_id=request.client_id,
            peer=request.peer,
            reason=reason,
            code=int(code),
            kid=key_id,
            description=description,
        )


def build_authenticator(settings: Mapping[str, Any], reactor: Any) -> JWTAuthenticator:
    """Return a :class:`JWTAuthenticator` for the merged plugin ``settings``.

    Raises :class:`mqttauth.service.config.ConfigError`.
    """
    parsed = parse_settings(settings)
    http_client = None
    if parsed.jwks_url is not None:
        http_client = make_http_client(reactor)
    return JWTAuthenticator(parsed, reactor, http_client)


def make_http_client(reactor: Any) -> Any:
    """Return a treq ``HTTPClient`` on ``reactor`` that keeps no idle connections."""
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=False)
    return HTTPClient(Agent(reactor, pool=pool))
