"""The ``JWT_*`` settings of the ``jwt`` authenticator: options, parsing, checks.

:data:`OPTIONS` lists every setting as a :class:`PluginOption` (command line
``--jwt-...``, environment ``JWT_...``, TOML key ``jwt-...``).  The service
merges the sources and coerces each value; :func:`parse_settings` then checks
the combination, loads static keys, applies the Entra ID shorthand, and
returns :class:`JWTSettings`, or raises :class:`ConfigError` naming the
settings at fault and the fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mqttauth.auth.interfaces import PluginOption
from mqttauth.jwt.keys import (
    ALL_ALGORITHMS,
    ASYMMETRIC_ALGORITHMS,
    HMAC_ALGORITHMS,
    KeyLoadError,
    KeyRing,
    load_key_base64,
    load_key_bytes,
    load_key_text,
)
from mqttauth.jwt.validation import DEFAULT_TYPES, ValidationPolicy, normalize_type
from mqttauth.service.config import ConfigError

ENTRA_AUTHORITY = "https://login.microsoftonline.com"
#: User Name value that accepts any User Name, or none, on the legacy flow.
ANY_USERNAME = "*"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_ENTRA_ALIASES = frozenset({"common", "organizations", "consumers"})
_METHOD_NAME = re.compile(r"^[\x21-\x7e]+$")


# --- coercion of single values ---


def _optional_text(value: Any) -> str | None:
    """Return the text, or ``None`` for an empty value (an unset variable)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value if value.strip() else None


def _names(value: Any) -> tuple[str, ...] | None:
    """Parse a list: a TOML array, or text separated by commas or spaces."""
    if value is None:
        return None
    if isinstance(value, str):
        items = [item for item in re.split(r"[,\s]+", value) if item]
    elif isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"expected a list of text, got {item!r}")
            items.extend(part for part in re.split(r"[,\s]+", item) if part)
    else:
        raise ValueError(f"expected a comma-separated list, got {value!r}")
    return tuple(dict.fromkeys(items)) or None


def _comma_separated(value: Any) -> tuple[str, ...] | None:
    """Parse a list whose items may contain spaces, such as audiences: a TOML
    array, or text separated by commas.  Items are trimmed."""
    if value is None:
        return None
    if isinstance(value, str):
        pieces = value.split(",")
    elif isinstance(value, (list, tuple)):
        pieces = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"expected a list of text, got {item!r}")
            pieces.extend(item.split(","))
    else:
        raise ValueError(f"expected a comma-separated list, got {value!r}")
    items = [piece.strip() for piece in pieces if piece.strip()]
    return tuple(dict.fromkeys(items)) or None


def _non_negative_number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, got {value!r}") from None
    if number != number or number < 0 or number == float("inf"):
        raise ValueError(
            f"expected a finite number of seconds of 0 or more, got {value!r}"
        )
    return number


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"expected a whole number of 0 or more, got {value!r}")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _option(
    name: str, help: str, default: Any = None, coerce: Any = _optional_text
) -> PluginOption:
    env = name.upper().replace("-", "_")
    return PluginOption(name=name, env=env, help=help, default=default, coerce=coerce)


#: Every setting of the ``jwt`` authenticator.
OPTIONS: tuple[PluginOption, ...] = (
    _option(
        "jwt-verification-key",
        "Static verification key: PEM public key or certificate, a JWK or JWKS in "
        "JSON, or an HMAC secret (at least 32 bytes).",
    ),
    _option(
        "jwt-verification-key-base64",
        "Static verification key as base64: of PEM, DER, JSON, or the raw HMAC secret.",
    ),
    _option(
        "jwt-verification-key-path",
        "File holding the static verification key (PEM, DER, JWK/JWKS JSON, or a raw "
        "HMAC secret; one trailing line break is ignored).",
    ),
    _option(
        "jwt-verification-key-algorithm",
        "Pin the static key to this JWS algorithm, for example RS256 or HS256.",
    ),
    _option(
        "jwt-jwks-url",
        "URL of the identity provider's JWKS document (https, or http on loopback).",
    ),
    _option(
        "jwt-entra-id-tenant-id",
        "Microsoft Entra ID tenant GUID; sets the JWKS URL, the expected issuer and "
        "the principal claim 'oid' unless those are set.",
    ),
    _option("jwt-expected-issuer", "Required 'iss' value, compared exactly."),
    _option(
        "jwt-audience",
        "Required audience: 'aud' must equal it or, as a list, contain it. Several "
        "accepted audiences may be given separated by commas.",
        coerce=_comma_separated,
    ),
    _option(
        "jwt-principal-claim",
        "Claim that names the principal ({username} in ACLs); default 'sub', or 'oid' "
        "with the Entra ID tenant set.",
    ),
    _option(
        "jwt-organization-claim",
        "Claim that gives {organization}, for example azp or appid.",
    ),
    _option(
        "jwt-groups-claim-name",
        "Claim with the {group} values, a list or a single string, for example roles.",
    ),
    _option(
        "jwt-mqtt-connect-username",
        "User Name that announces a token in the Password field; '*' accepts any.",
        default="JWT",
    ),
    _option(
        "jwt-authentication-methods",
        "MQTT 5 Authentication Method names accepted for a token in Authentication "
        "Data, separated by commas.",
        default="JWT",
        coerce=_names,
    ),
    _option(
        "jwt-algorithms",
        "Allowed JWS algorithms, separated by commas; default: those fitting the keys "
        "(asymmetric ones for a JWKS URL).",
        coerce=_names,
    ),
    _option(
        "jwt-allowed-types",
        "Accepted 'typ' header values, compared case-insensitively; a token without "
        "'typ' is accepted too.",
        default=",".join(DEFAULT_TYPES),
        coerce=_names,
    ),
    _option(
        "jwt-require-exp",
        "Reject tokens without 'exp'.",
        default="true",
        coerce=_boolean,
    ),
    _option(
        "jwt-leeway",
        "Clock skew allowed for exp, nbf and iat, in seconds; the connection also ends "
        "this long after exp.",
        default="30",
        coerce=_non_negative_int,
    ),
    _option(
        "jwt-max-token-size",
        "Longest token accepted, in bytes, checked before parsing.",
        default="16384",
        coerce=_non_negative_int,
    ),
    _option(
        "jwt-jwks-min-refresh-interval",
        "Seconds between two JWKS refreshes that unknown 'kid' values trigger.",
        default="60",
        coerce=_non_negative_number,
    ),
    _option(
        "jwt-jwks-refresh-interval",
        "Seconds between background JWKS refreshes; a shorter Cache-Control max-age "
        "(not below the minimum refresh interval) is honoured.",
        default="3600",
        coerce=_non_negative_number,
    ),
    _option(
        "jwt-jwks-timeout",
        "Seconds a JWKS request may take.",
        default="10",
        coerce=_non_negative_number,
    ),
    _option(
        "jwt-token-cache-size",
        "Verified tokens remembered until their exp, so reconnects skip the signature "
        "check; 0 turns the cache off.",
        default="10000",
        coerce=_non_negative_int,
    ),
)

#: Environment variable name of each option, keyed by settings key.
_ENV = {option.name.replace("-", "_"): option.env for option in OPTIONS}
STATIC_KEY_SETTINGS = (
    "jwt_verification_key",
    "jwt_verification_key_base64",
    "jwt_verification_key_path",
)


# --- the parsed settings ---


@dataclass(frozen=True, slots=True)
class JWTSettings:
    """The checked configuration of one ``jwt`` authenticator."""

    policy: ValidationPolicy
    #: The static keys, or ``None`` when keys come from :attr:`jwks_url`.
    key_ring: KeyRing | None
    #: The setting the static keys came from, for logs.
    key_setting: str | None
    jwks_url: str | None
    entra_tenant_id: str | None
    connect_username: str
    methods: tuple[str, ...]
    jwks_min_refresh_interval: float
    jwks_refresh_interval: float
    jwks_timeout: float
    token_cache_size: int
    data_dir: str | None

    def describe(self) -> list[tuple[str, str]]:
        """Return ``(setting, value)`` pairs of the values in force, for the
        start-up log.  Secrets and key material are never included."""
        policy = self.policy
        if self.key_ring is not None:
            kinds = sorted({entry.key.key_type for entry in self.key_ring.keys})
            count = len(self.key_ring)
            keys = f"{count} static key(s) ({', '.join(kinds)}) from {self.key_setting}"
        else:
            keys = f"JWKS from {self.jwks_url}"
        pairs = [
            ("keys", keys),
            ("JWT_ENTRA_ID_TENANT_ID", self.entra_tenant_id or "(not set)"),
            ("JWT_EXPECTED_ISSUER", policy.issuer or "(not set: any issuer)"),
            ("JWT_AUDIENCE", ", ".join(policy.audiences) or "(not set: any audience)"),
            ("JWT_ALGORITHMS", ", ".join(sorted(policy.algorithms))),
            ("JWT_ALLOWED_TYPES", ", ".join(sorted(policy.allowed_types))),
            ("JWT_REQUIRE_EXP", str(policy.require_exp).lower()),
            ("JWT_LEEWAY", f"{policy.leeway} s"),
            ("JWT_MAX_TOKEN_SIZE", f"{policy.max_token_size} bytes"),
            ("JWT_PRINCIPAL_CLAIM", policy.principal_claim),
            ("JWT_ORGANIZATION_CLAIM", policy.organization_claim or "(not set)"),
            ("JWT_GROUPS_CLAIM_NAME", policy.groups_claim or "(not set)"),
            ("JWT_MQTT_CONNECT_USERNAME", self.connect_username),
            ("JWT_AUTHENTICATION_METHODS", ", ".join(self.methods)),
            ("JWT_TOKEN_CACHE_SIZE", str(self.token_cache_size)),
        ]
        if self.jwks_url is not None:
            pairs += [
                (
                    "JWT_JWKS_MIN_REFRESH_INTERVAL",
                    f"{self.jwks_min_refresh_interval:g} s",
                ),
                ("JWT_JWKS_REFRESH_INTERVAL", f"{self.jwks_refresh_interval:g} s"),
                ("JWT_JWKS_TIMEOUT", f"{self.jwks_timeout:g} s"),
            ]
        return pairs


def parse_settings(settings: Mapping[str, Any]) -> JWTSettings:
    """Check and combine the coerced ``jwt_*`` settings; see the module docstring.

    ``settings`` is keyed like :meth:`IAuthenticatorPlugin.build` receives it
    (``jwt_jwks_url``), and ``settings["data_dir"]`` may name the data
    directory.  Raises :class:`ConfigError`.
    """
    values: dict[str, Any] = {key: settings.get(key) for key in _ENV}
    for option in OPTIONS:
        key = option.name.replace("-", "_")
        if values[key] is None and option.default is not None:
            values[key] = option.coerce(option.default)

    tenant = _entra_tenant(values["jwt_entra_id_tenant_id"])
    key_setting = _static_key_setting(values)
    jwks_url = values["jwt_jwks_url"]
    if jwks_url is None and tenant is not None:
        if key_setting is not None:
            raise _conflict("jwt_entra_id_tenant_id", key_setting)
        jwks_url = f"{ENTRA_AUTHORITY}/{tenant}/discovery/v2.0/keys"
    elif jwks_url is not None:
        if key_setting is not None:
            raise _conflict("jwt_jwks_url", key_setting)
        _check_jwks_url(jwks_url)
    ring = _load_static_key(key_setting, values[key_setting]) if key_setting else None
    if ring is None and jwks_url is None:
        raise ConfigError(
            "JWT_JWKS_URL",
            "no verification key is configured; set one of JWT_JWKS_URL, "
            "JWT_ENTRA_ID_TENANT_ID, JWT_VERIFICATION_KEY, JWT_VERIFICATION_KEY_BASE64 "
            "or JWT_VERIFICATION_KEY_PATH",
        )

    issuer = values["jwt_expected_issuer"]
    if issuer is None and tenant is not None:
        issuer = f"{ENTRA_AUTHORITY}/{tenant}/v2.0"
    principal_claim = values["jwt_principal_claim"]
    if principal_claim is None:
        principal_claim = "oid" if tenant is not None else "sub"

    policy = ValidationPolicy(
        algorithms=_algorithms(values, ring),
        allowed_types=frozenset(normalize_type(t) for t in values["jwt_allowed_types"]),
        max_token_size=_token_size(values["jwt_max_token_size"]),
        leeway=_leeway(values["jwt_leeway"]),
        require_exp=values["jwt_require_exp"],
        issuer=issuer,
        audiences=values["jwt_audience"] or (),
        principal_claim=principal_claim,
        organization_claim=values["jwt_organization_claim"],
        groups_claim=values["jwt_groups_claim_name"],
    )
    min_refresh, refresh = _refresh_intervals(values)
    return JWTSettings(
        policy=policy,
        key_ring=ring,
        key_setting=_ENV[key_setting] if key_setting is not None else None,
        jwks_url=jwks_url if ring is None else None,
        entra_tenant_id=tenant,
        connect_username=values["jwt_mqtt_connect_username"],
        methods=_methods(values["jwt_authentication_methods"]),
        jwks_min_refresh_interval=min_refresh,
        jwks_refresh_interval=refresh,
        jwks_timeout=_timeout(values["jwt_jwks_timeout"]),
        token_cache_size=values["jwt_token_cache_size"],
        data_dir=settings.get("data_dir"),
    )


def _conflict(*keys: str) -> ConfigError:
    names = [_ENV[key] for key in keys]
    return ConfigError(
        " and ".join(names),
        "each names a key source, but only one may be configured; remove all but one",
    )


def _entra_tenant(value: str | None) -> str | None:
    if value is None:
        return None
    tenant = value.strip()
    if tenant.lower() in _ENTRA_ALIASES:
        raise ConfigError(
            "JWT_ENTRA_ID_TENANT_ID",
            f"{tenant!r} is not a tenant: tokens of a multi-tenant application "
            "carry each tenant's own GUID in 'iss', so no single issuer matches. Set "
            "JWT_JWKS_URL and JWT_EXPECTED_ISSUER explicitly instead",
        )
    if not _GUID.match(tenant):
        hint = (
            " A domain name never matches, because Entra ID puts the GUID in 'iss'."
            if "." in tenant
            else ""
        )
        raise ConfigError(
            "JWT_ENTRA_ID_TENANT_ID",
            f"{tenant!r} is not a tenant GUID.{hint} Use the 'Directory (tenant) ID' "
            "shown in the Entra admin center, such as "
            "'aaaabbbb-0000-cccc-1111-dddd2222eeee'",
        )
    # Entra ID writes the GUID in lower case in 'iss' and in its URLs.
    return tenant.lower()


def _static_key_setting(values: Mapping[str, Any]) -> str | None:
    present = [key for key in STATIC_KEY_SETTINGS if values[key] is not None]
    if len(present) > 1:
        raise _conflict(*present)
    return present[0] if present else None


def _load_static_key(key: str, value: str) -> KeyRing:
    try:
        if key == "jwt_verification_key":
            ring = load_key_text(value)
        elif key == "jwt_verification_key_base64":
            ring = load_key_base64(value)
        else:
            ring = load_key_bytes(_read_key_file(value), strip_newline=True)
    except KeyLoadError as error:
        raise ConfigError(_ENV[key], f"the key cannot be used: {error}") from None
    return ring


def _read_key_file(path: str) -> bytes:
    try:
        with open(os.path.expanduser(path), "rb") as file:
            return file.read()
    except OSError as error:
        raise ConfigError(
            "JWT_VERIFICATION_KEY_PATH",
            f"cannot read {path!r}: {error.strerror or error}; give the path of a "
            "readable key file",
        ) from None


def _check_jwks_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise ConfigError(
            "JWT_JWKS_URL", f"{url!r} is not a valid URL ({error})"
        ) from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(
            "JWT_JWKS_URL",
            f"{url!r} is not an http(s) URL with a host, such as "
            "'https://idp.example.com/.well-known/jwks.json'",
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "JWT_JWKS_URL", "the URL must not contain a user name or password"
        )
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigError(
            "JWT_JWKS_URL",
            f"{url!r} uses plain http to a host that is not loopback; use https so "
            "that nobody on the path can substitute keys",
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _algorithms(values: Mapping[str, Any], ring: KeyRing | None) -> frozenset[str]:
    listed: Sequence[str] | None = values["jwt_algorithms"]
    pinned: str | None = values["jwt_verification_key_algorithm"]
    for name in listed or ():
        _check_algorithm_name("JWT_ALGORITHMS", name)
    if listed is not None and ring is None:
        secrets = sorted(set(listed) & set(HMAC_ALGORITHMS))
        if secrets:
            raise ConfigError(
                "JWT_ALGORITHMS",
                f"{', '.join(secrets)} need a shared secret, which a JWKS URL never "
                "provides; list asymmetric algorithms only",
            )
    if pinned is not None:
        if ring is None:
            raise ConfigError(
                "JWT_VERIFICATION_KEY_ALGORITHM",
                "pins the algorithm of a static key, but keys come from a JWKS URL; "
                "use JWT_ALGORITHMS to restrict JWKS algorithms",
            )
        _check_algorithm_name("JWT_VERIFICATION_KEY_ALGORITHM", pinned)
        if listed is not None and pinned not in listed:
            raise ConfigError(
                "JWT_VERIFICATION_KEY_ALGORITHM and JWT_ALGORITHMS",
                f"the pinned algorithm {pinned} is not in JWT_ALGORITHMS; add it or "
                "remove one of the two settings",
            )
        listed = [pinned]
        setting = "JWT_VERIFICATION_KEY_ALGORITHM"
    else:
        setting = "JWT_ALGORITHMS"
    if ring is None:
        return frozenset(listed) if listed is not None else ASYMMETRIC_ALGORITHMS
    usable = ring.algorithms
    if listed is None:
        return usable
    unusable = sorted(set(listed) - usable)
    if unusable:
        kinds = ", ".join(sorted({entry.key.key_type for entry in ring.keys}))
        raise ConfigError(
            setting,
            f"{', '.join(unusable)} cannot be verified with the configured {kinds} "
            f"key; that key fits {', '.join(sorted(usable))}",
        )
    return frozenset(listed)


def _check_algorithm_name(setting: str, name: str) -> None:
    if name.lower() == "none":
        raise ConfigError(setting, "'none' (unsigned tokens) can never be allowed")
    if name not in ALL_ALGORITHMS:
        raise ConfigError(
            setting,
            f"unknown algorithm {name!r}; choose from "
            f"{', '.join(sorted(ALL_ALGORITHMS))}",
        )


def _methods(methods: tuple[str, ...]) -> tuple[str, ...]:
    for name in methods:
        if not _METHOD_NAME.match(name):
            raise ConfigError(
                "JWT_AUTHENTICATION_METHODS",
                f"{name!r} is not a method name; use printable ASCII without spaces",
            )
    return methods


def _token_size(size: int) -> int:
    if not 128 <= size <= 65535:
        raise ConfigError(
            "JWT_MAX_TOKEN_SIZE",
            f"{size} is out of range; give 128 to 65535 bytes (the largest MQTT "
            "Password or Authentication Data)",
        )
    return size


def _leeway(leeway: int) -> int:
    if leeway > 3600:
        raise ConfigError(
            "JWT_LEEWAY", f"{leeway} s is more than an hour; clock skew needs seconds"
        )
    return leeway


def _timeout(timeout: float) -> float:
    if timeout <= 0:
        raise ConfigError("JWT_JWKS_TIMEOUT", "must be more than 0 seconds")
    return timeout


def _refresh_intervals(values: Mapping[str, Any]) -> tuple[float, float]:
    minimum: float = values["jwt_jwks_min_refresh_interval"]
    interval: float = values["jwt_jwks_refresh_interval"]
    if interval <= 0:
        raise ConfigError("JWT_JWKS_REFRESH_INTERVAL", "must be more than 0 seconds")
    if interval < minimum:
        raise ConfigError(
            "JWT_JWKS_REFRESH_INTERVAL and JWT_JWKS_MIN_REFRESH_INTERVAL",
            f"the refresh interval ({interval:g} s) is shorter than the minimum "
            f"refresh interval ({minimum:g} s); raise the first or lower the second",
        )
    return minimum, interval
