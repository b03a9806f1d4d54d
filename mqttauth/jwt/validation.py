"""Pure JWT validation: header rules, signature, claims, and the identity fields.

Nothing here does I/O, reads a clock or logs: the caller passes the token,
the candidate keys and ``now``.  Validation is split in two steps so that the
caller can find keys in between (a JWKS refresh may be needed):

1. :meth:`TokenValidator.parse` checks the size limit before anything is
   decoded, then the JOSE header: ``alg`` in the allow-list and never
   ``none``, no ``crit`` extensions (this broker implements none), no
   unencoded payload (RFC 7797 is not for JWTs), ``typ`` in the accepted list.
   The ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never read: keys only
   come from the configuration.
2. :meth:`TokenValidator.verify` checks the signature with keys that fit the
   token's ``alg`` (see :mod:`mqttauth.jwt.keys`), then the claims with
   joserfc's :class:`~joserfc.jwt.JWTClaimsRegistry`, and extracts the
   principal, organization and groups.

Every rejection raises :class:`TokenError` with a machine reason and a
description fit for a Reason String; neither ever contains the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from joserfc import jws
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwt import JWTClaimsRegistry
from joserfc.registry import JWS_HEADER_REGISTRY, HeaderRegistryDict

from mqttauth.jwt.keys import VerificationKey

#: Date claims that must be JSON numbers (RFC 7519 NumericDate).
DATE_CLAIMS = ("exp", "nbf", "iat")
#: Header parameters that name keys or certificates by reference or by value.
#: They are treated as unknown (so ignored), never fetched or trusted.
IGNORED_KEY_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
DEFAULT_TYPES = ("JWT", "at+jwt")
_MAX_REPORTED_VALUE = 80
#: Three base64url parts without padding; the signature is empty only for
#: ``alg: none``, which is rejected separately.
_COMPACT_JWS = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: Largest integer date accepted (2**53 seconds, about 285 million years), so
#: every date converts to a float without loss or overflow.
_MAX_NUMERIC_DATE = 2**53


class TokenError(Exception):
    """A rejected token: ``reason`` is a short machine code (``expired_token``),
    ``description`` a sentence for the Reason String and the log."""

    def __init__(
        self, reason: str, description: str, key_id: str | None = None
    ) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.key_id = key_id


def normalize_type(value: str) -> str:
    """Return the comparable form of a ``typ`` value.

    RFC 7515 4.1.9: media types are case-insensitive, and a value without a
    ``/`` stands for ``application/`` followed by it.
    """
    lowered = value.strip().lower()
    if lowered.startswith("application/"):
        return lowered[len("application/") :]
    return lowered


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """The rules a token must satisfy; every field comes from a ``JWT_*`` setting."""

    algorithms: frozenset[str]
    allowed_types: frozenset[str] = frozenset(normalize_type(t) for t in DEFAULT_TYPES)
    #: Maximum token size in bytes, checked before any decoding.
    max_token_size: int = 16384
    #: Clock-skew allowance in seconds for ``exp``, ``nbf`` and ``iat``.
    leeway: int = 30
    require_exp: bool = True
    issuer: str | None = None
    #: Accepted audiences; ``aud`` must equal one (or contain one, as a list).
    audiences: tuple[str, ...] = ()
    principal_claim: str = "sub"
    organization_claim: str | None = None
    groups_claim: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token whose header passed the rules, before its signature is checked."""

    algorithm: str
    key_id: str | None
    header: Mapping[str, Any]
    signature: jws.CompactSignature


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token that passed every rule, and the identity fields taken from it."""

    principal: str
    organization: str | None
    groups: tuple[str, ...]
    #: ``exp`` plus the leeway, in POSIX seconds; ``None`` without ``exp``.
    expires_at: float | None
    claims: Mapping[str, Any]
    key_id: str | None
    #: The key that verified the signature.
    key: VerificationKey


class _Registry(jws.JWSRegistry):
    """A JWS registry that registers no key-carrying headers and never warns.

    joserfc's ``get_alg`` warns on every use of a deprecated algorithm
    (``EdDSA``); the allow-list here is the operator's decision.
    """

    default_header_registry: HeaderRegistryDict = {
        name: parameter
        for name, parameter in JWS_HEADER_REGISTRY.items()
        if name not in IGNORED_KEY_HEADERS
    }

    def get_alg(self, name: str) -> Any:
        if (
            self.allowed is None
            or name not in self.allowed
            or name not in self.algorithms
        ):
            raise UnsupportedAlgorithmError(f"Algorithm of {name!r} is not allowed")
        return self.algorithms[name]


class TokenValidator:
    """Validates JWTs against one :class:`ValidationPolicy`."""

    def __init__(self, policy: ValidationPolicy) -> None:
        if "none" in policy.algorithms:
            raise ValueError("the 'none' algorithm can never be allowed")
        self.policy = policy
        self._registry = _Registry(
            algorithms=sorted(policy.algorithms), strict_check_header=False
        )
        # joserfc's own limits are per part; the token limit covers them all.
        self._registry.max_header_length = policy.max_token_size
        self._registry.max_payload_length = policy.max_token_size
        self._registry.max_signature_length = policy.max_token_size

    def parse(self, token: bytes | str) -> ParsedToken:
        """Check the size and the JOSE header of ``token``.

        Raises :class:`TokenError` with reason ``token_too_large``,
        ``malformed_token``, ``unsigned_token``, ``unsupported_algorithm``,
        ``unsupported_critical_header`` or ``unsupported_type``.
        """
        raw = token.encode("utf-8") if isinstance(token, str) else bytes(token)
        if len(raw) > self.policy.max_token_size:
            raise TokenError(
                "token_too_large",
                f"token is {len(raw)} bytes, over the limit of "
                f"{self.policy.max_token_size} bytes",
            )
        header = _decode_header(raw)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("malformed_token", "header 'kid' is not a string")
        self._check_header(header, kid)
        try:
            signature = jws.extract_compact(raw, registry=self._registry)
        except JoseError as error:
            raise TokenError("malformed_token", _joserfc_text(error), kid) from None
        return ParsedToken(header["alg"], kid, header, signature)

    def _check_header(self, header: Mapping[str, Any], kid: str | None) -> None:
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise TokenError(
                "malformed_token", "header 'alg' is missing or not a string", kid
            )
        if alg.lower() == "none":
            raise TokenError(
                "unsigned_token", "unsigned tokens (alg 'none') are not accepted", kid
            )
        if alg not in self.policy.algorithms:
            raise TokenError(
                "unsupported_algorithm",
                f"algorithm {_shorten(alg)!r} is not allowed; allowed: "
                f"{', '.join(sorted(self.policy.algorithms))}",
                kid,
            )
        if "crit" in header:
            raise TokenError(
                "unsupported_critical_header",
                f"critical header extensions {_shorten(header['crit'])} are not "
                "supported",
                kid,
            )
        if "b64" in header and header["b64"] is not True:
            raise TokenError(
                "malformed_token", "unencoded payloads (b64) are not accepted", kid
            )
        typ = header.get("typ")
        if typ is not None:
            if (
                not isinstance(typ, str)
                or normalize_type(typ) not in self.policy.allowed_types
            ):
                raise TokenError(
                    "unsupported_type",
                    f"token type {_shorten(typ)!r} is not accepted",
                    kid,
                )

    def verify(
        self, parsed: ParsedToken, candidates: Sequence[VerificationKey], now: float
    ) -> VerifiedToken:
        """Check the signature with ``candidates``, then the claims at ``now``.

        ``candidates`` are the keys that fit the token's ``kid`` and ``alg``
        (:meth:`mqttauth.jwt.keys.KeyRing.candidates`); they are tried in
        order.  ``now`` is POSIX time in seconds.  Raises :class:`TokenError`.
        """
        kid = parsed.key_id
        key = self._check_signature(parsed, candidates)
        claims = _decode_claims(parsed.signature.payload, kid)
        self._check_claims(claims, now, kid)
        return self._identity_fields(claims, kid, key)

    def _check_signature(
        self, parsed: ParsedToken, candidates: Sequence[VerificationKey]
    ) -> VerificationKey:
        for entry in candidates:
            if parsed.algorithm not in entry.algorithms:
                continue
            try:
                valid = jws.validate_compact(
                    parsed.signature, entry.key, registry=self._registry
                )
            except (JoseError, ValueError, TypeError) as error:
                raise TokenError(
                    "bad_signature",
                    f"signature cannot be checked: {_joserfc_text(error)}",
                    parsed.key_id,
                ) from None
            if valid:
                return entry
        raise TokenError("bad_signature", "signature is invalid", parsed.key_id)

    def _check_claims(
        self, claims: dict[str, Any], now: float, kid: str | None
    ) -> None:
        for name in DATE_CLAIMS:
            if name in claims and not _is_numeric_date(claims[name]):
                raise TokenError(
                    "invalid_claim",
                    f"claim {name!r} must be a NumericDate (a JSON number of seconds)",
                    kid,
                )
        # joserfc compares exp with a whole-second now, so it would accept a
        # fractional exp for up to a second after it passed. This check uses
        # the exact time, so an accepted token always has expires_at > now.
        exp = claims.get("exp")
        if exp is not None and exp <= now - self.policy.leeway:
            raise TokenError("expired_token", "token has expired", kid)
        options: dict[str, Any] = {"exp": {"essential": self.policy.require_exp}}
        if self.policy.issuer is not None:
            options["iss"] = {"essential": True, "value": self.policy.issuer}
        if self.policy.audiences:
            options["aud"] = {"essential": True, "values": list(self.policy.audiences)}
        registry = JWTClaimsRegistry(
            now=math.floor(now), leeway=self.policy.leeway, **options
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise TokenError("expired_token", "token has expired", kid) from None
        except MissingClaimError as error:
            names = ", ".join(repr(name) for name in error.claim.split(","))
            raise TokenError(
                "missing_claim", f"token has no {names} claim", kid
            ) from None
        except InvalidClaimError as error:
            raise self._claim_error(error.claim, claims.get(error.claim), kid) from None

    def _claim_error(self, claim: str, value: Any, kid: str | None) -> TokenError:
        if claim == "nbf":
            return TokenError("not_yet_valid", "token is not valid yet (nbf)", kid)
        if claim == "iat":
            return TokenError(
                "issued_in_future", "token was issued in the future (iat)", kid
            )
        if claim == "iss":
            return TokenError(
                "wrong_issuer",
                f"issuer {_shorten(value)!r} is not the expected issuer "
                f"{_shorten(self.policy.issuer)!r}",
                kid,
            )
        if claim == "aud":
            return TokenError(
                "wrong_audience",
                f"audience {_shorten(value)!r} does not contain the expected audience",
                kid,
            )
        return TokenError("invalid_claim", f"claim {claim!r} has an invalid value", kid)

    def _identity_fields(
        self, claims: dict[str, Any], kid: str | None, key: VerificationKey
    ) -> VerifiedToken:
        policy = self.policy
        principal = claims.get(policy.principal_claim)
        if principal is None or (isinstance(principal, str) and not principal.strip()):
            raise TokenError(
                "missing_principal",
                f"claim {policy.principal_claim!r} (the principal) is missing or empty",
                kid,
            )
        if not isinstance(principal, str):
            raise TokenError(
                "invalid_principal",
                f"claim {policy.principal_claim!r} (the principal) is not a string",
                kid,
            )
        organization = _optional_string(claims, policy.organization_claim, kid)
        groups = _string_list(claims, policy.groups_claim, kid)
        exp = claims.get("exp")
        expires_at = float(exp) + policy.leeway if exp is not None else None
        return VerifiedToken(
            principal=principal,
            organization=organization,
            groups=groups,
            expires_at=expires_at,
            claims=MappingProxyType(claims),
            key_id=kid,
            key=key,
        )


def _decode_header(raw: bytes) -> dict[str, Any]:
    parts = raw.split(b".")
    if len(parts) != 3:
        raise TokenError("malformed_token", "token is not a compact JWS of three parts")
    if not _COMPACT_JWS.fullmatch(raw):
        # Base64 decoders skip characters outside the alphabet, which would
        # give one token many spellings; only the strict form is accepted.
        raise TokenError(
            "malformed_token", "token contains characters outside base64url"
        )
    try:
        header = _JSON.decode(_b64url_decode(parts[0]).decode("utf-8"))
    except (ValueError, RecursionError):
        # json raises RecursionError for nesting deeper than Python's
        # recursion limit, and UnicodeDecodeError is a ValueError.
        raise TokenError(
            "malformed_token", "token header is not base64url-encoded JSON"
        ) from None
    if not isinstance(header, dict):
        raise TokenError("malformed_token", "token header is not a JSON object")
    return header


def _decode_claims(payload: bytes, kid: str | None) -> dict[str, Any]:
    try:
        claims = _JSON.decode(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        raise TokenError(
            "invalid_payload", "token claims are not valid JSON", kid
        ) from None
    if not isinstance(claims, dict):
        raise TokenError("invalid_payload", "token claims are not a JSON object", kid)
    return claims


def _b64url_decode(segment: bytes) -> bytes:
    if b"=" in segment:
        raise ValueError("padding is not allowed in base64url segments")
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except binascii.Error as error:
        raise ValueError(str(error)) from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate member {name!r}")
        result[name] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


#: Strict JSON: duplicate member names and NaN or Infinity raise ValueError.
_JSON = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
)


def _is_numeric_date(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= _MAX_NUMERIC_DATE
    return isinstance(value, float) and math.isfinite(value)


def _optional_string(
    claims: Mapping[str, Any], name: str | None, kid: str | None
) -> str | None:
    if name is None:
        return None
    value = claims.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TokenError("invalid_claim", f"claim {name!r} is not a string", kid)
    return value


def _string_list(
    claims: Mapping[str, Any], name: str | None, kid: str | None
) -> tuple[str, ...]:
    if name is None:
        return ()
    value = claims.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TokenError(
            "invalid_claim", f"claim {name!r} is not a string or a list of strings", kid
        )
    return tuple(dict.fromkeys(item for item in value if item))


def _shorten(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > _MAX_REPORTED_VALUE:
        return text[: _MAX_REPORTED_VALUE - 3] + "..."
    return text


def _joserfc_text(error: JoseError | Exception) -> str:
    if isinstance(error, JoseError):
        return error.description or error.error
    return str(error)
