"""The settings ``twistd mqttauth`` reads, and how each one's text is coerced.

Every setting has three spellings: a long command-line option
(``--max-connections``), an environment variable (``MQTTAUTH_MAX_CONNECTIONS``)
and a TOML key equal to the long option's name (``max-connections``).  The
service's own settings and the broker's limits are defined here; the plugins'
settings come from their :class:`~mqttauth.auth.interfaces.PluginOption` lists
and are turned into :class:`Setting` objects by :func:`plugin_settings`.

Coercers take either the text of a command-line option or environment
variable, or the typed value of a TOML key, and raise ``ValueError`` with a
message that says what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mqttauth.auth.interfaces import PluginOption
from mqttauth.broker.settings import BrokerSettings
from mqttauth.mqtt.constants import ReasonCode

#: Prefix of the environment variables of the service and broker settings.
ENV_PREFIX = "MQTTAUTH_"

SettingKind = Literal["value", "list", "flag"]


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting with its command-line, environment and TOML spellings.

    ``kind`` is ``"value"`` for an option that takes one value, ``"list"`` for
    a repeatable option (each use on the command line adds one item; the
    environment variable and TOML key give the whole list) and ``"flag"`` for
    an option that takes no value on the command line.  ``owner`` names where
    the setting comes from: ``"service"``, ``"broker"`` or a plugin's name.
    """

    name: str
    env: str
    help: str
    default: Any = None
    coerce: Callable[[Any], Any] = str
    kind: SettingKind = "value"
    secret: bool = False
    owner: str = "service"
    metavar: str = "VALUE"

    @property
    def key(self) -> str:
        """Return the name plugins see in their settings mapping."""
        return self.name.replace("-", "_")

    @property
    def option(self) -> str:
        """Return the command-line spelling, ``--name``."""
        return f"--{self.name}"


# Coercers ----------------------------------------------------------------

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def to_bool(value: Any) -> bool:
    """Coerce ``true``/``false``, ``yes``/``no``, ``on``/``off`` or ``1``/``0``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ValueError(f"expected true or false, got {value!r}")


def to_int(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    """Return a coercer for a whole number from ``minimum`` to ``maximum``."""

    def coerce(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {value!r}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            number = int(value)
        else:
            raise ValueError(f"expected a whole number, got {value!r}")
        if number < minimum or (maximum is not None and number > maximum):
            upper = "" if maximum is None else f" and at most {maximum}"
            raise ValueError(f"expected at least {minimum}{upper}, got {number}")
        return number

    return coerce


def to_positive_float(value: Any) -> float:
    """Coerce a number of seconds greater than zero."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise ValueError(f"expected a number of seconds above 0, got {value!r}")
    return number


def to_text(value: Any) -> str:
    """Coerce a non-empty string."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    if not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def to_existing_file(value: Any) -> str:
    """Coerce the path of a readable regular file."""
    path = to_text(value)
    if not os.path.exists(path):
        raise ValueError(f"file {path!r} not found")
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a regular file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"file {path!r} is not readable by this user")
    return path


def to_words(value: Any) -> tuple[str, ...]:
    """Coerce a list of names, or one string of names split by commas or spaces."""
    if isinstance(value, str):
        items = [item for item in re.split(r"[\s,]+", value) if item]
    elif isinstance(value, (list, tuple)):
        items = [to_text(item).strip() for item in value]
    else:
        raise ValueError(f"expected a list of names, got {value!r}")
    if not items:
        raise ValueError("expected at least one name")
    return tuple(items)


def to_endpoints(value: Any) -> tuple[str, ...]:
    """Coerce a list of endpoint strings, or one string of them split by spaces.

    Endpoint strings may contain commas, so only whitespace separates them.
    """
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, (list, tuple)):
        items = [to_text(item).strip() for item in value]
    else:
        raise ValueError(f"expected a list of endpoint strings, got {value!r}")
    if not items:
        raise ValueError("expected at least one endpoint string")
    return tuple(items)


TLS_VERSIONS = ("1.2", "1.3")


def to_tls_version(value: Any) -> str:
    """Coerce a TLS version name, ``1.2`` or ``1.3``."""
    text = str(value).strip()
    if text.lower().startswith("tlsv"):
        text = text[4:]
    if text not in TLS_VERSIONS:
        raise ValueError(f"expected 1.2 or 1.3, got {value!r}")
    return text


def to_log_level(value: Any) -> str:
    """Coerce a log level name: debug, info, warn, error or critical."""
    from .logfile import LOG_LEVELS

    text = str(value).strip().lower()
    if text == "warning":
        text = "warn"
    if text not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return text


#: The reason codes a broker may send when a credential expires.
CREDENTIAL_EXPIRY_REASON_CODES = (
    ReasonCode.NOT_AUTHORIZED,
    ReasonCode.MAXIMUM_CONNECT_TIME,
)


def to_expiry_reason_code(value: Any) -> ReasonCode:
    """Coerce ``0x87``/``not-authorized`` or ``0xA0``/``maximum-connect-time``."""
    code: ReasonCode | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        code = ReasonCode(value) if value in ReasonCode._value2member_map_ else None
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", text):
            number = int(text, 0)
            code = (
                ReasonCode(number) if number in ReasonCode._value2member_map_ else None
            )
        else:
            code = ReasonCode.__members__.get(text.upper().replace("-", "_"))
    if code not in CREDENTIAL_EXPIRY_REASON_CODES:
        raise ValueError(
            "expected 0x87 (not-authorized) or 0xA0 (maximum-connect-time), "
            f"got {value!r}"
        )
    return code


# The service's own settings ------------------------------------------------


def _service(name: str, help: str, **kwargs: Any) -> Setting:
    env = ENV_PREFIX + name.upper().replace("-", "_")
    return Setting(name=name, env=env, help=help, owner="service", **kwargs)


SERVICE_SETTINGS: tuple[Setting, ...] = (
    _service(
        "listen",
        "Twisted endpoint string to accept MQTT connections on, such as "
        "tcp:1883:interface=127.0.0.1 or ssl:8883:privateKey=key.pem:certKey=cert.pem; "
        "repeat for several listeners.",
        default=("tcp:1883",),
        coerce=to_endpoints,
        kind="list",
        metavar="ENDPOINT",
    ),
    _service(
        "config",
        "TOML file with settings; its keys are the long option names.",
        coerce=to_existing_file,
        metavar="FILE",
    ),
    _service(
        "authenticator",
        "Name of the authenticator plugin that decides every CONNECT "
        "(see --help-plugins). Required unless --dev is given.",
        coerce=to_text,
        metavar="NAME",
    ),
    _service(
        "authorizer",
        "Name of an authorizer plugin; repeat to build a chain that is asked in "
        "order, where the first plugin that decides wins and no decision means deny.",
        default=("allow-all",),
        coerce=to_words,
        kind="list",
        metavar="NAME",
    ),
    _service(
        "password-file",
        "Password file in the format mosquitto_passwd writes, for the "
        "password-file authenticator.",
        coerce=to_existing_file,
        metavar="FILE",
    ),
    _service(
        "acl-file",
        "ACL rule file (Mosquitto acl_file syntax or CSV rules), for the "
        "acl-file authorizer.",
        coerce=to_existing_file,
        metavar="FILE",
    ),
    _service(
        "data-dir",
        "Directory for durable state: sessions, queued and retained messages. "
        "Without it, state is kept in memory and lost on restart.",
        coerce=to_text,
        metavar="DIR",
    ),
    _service(
        "dev",
        "Start a development broker: loopback only, a development signing key and "
        "a JWKS server, the jwt authenticator. Never use it in production. Only "
        "the command line turns it on: MQTTAUTH_DEV or dev = true stops start-up. "
        "It cannot be combined with --authenticator, --authorizer or --jwt-* "
        "options.",
        default=False,
        coerce=to_bool,
        kind="flag",
    ),
    _service(
        "tls-min-version",
        "Lowest TLS version that ssl: listeners accept: 1.2 or 1.3.",
        default="1.2",
        coerce=to_tls_version,
        metavar="VERSION",
    ),
    _service(
        "tls-client-ca",
        "PEM file of CA certificates; ssl: listeners then ask clients for a "
        "certificate and reject any that these CAs did not sign.",
        coerce=to_existing_file,
        metavar="FILE",
    ),
    _service(
        "tls-require-client-cert",
        "Reject TLS clients that present no certificate (needs --tls-client-ca).",
        default=False,
        coerce=to_bool,
        kind="flag",
    ),
    _service(
        "log-level",
        "Lowest level of the log events written: debug, info, warn, error or "
        "critical. It applies to twistd's --nodaemon and --logfile output, "
        "not to --syslog or --logger.",
        default="info",
        coerce=to_log_level,
        metavar="LEVEL",
    ),
)


# The broker's limits -------------------------------------------------------

#: Help text and coercer of each BrokerSettings field.  A field that is not
#: listed here still becomes a setting, with help text naming its type.
_BROKER_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "max_connections": (
        "Connections accepted at once; 0 means no limit.",
        to_int(0),
    ),
    "max_packet_size": (
        "Largest packet accepted from a client, in bytes.",
        to_int(16, 268_435_460),
    ),
    "receive_maximum": (
        "QoS 1 and 2 messages a client may have unacknowledged towards the broker.",
        to_int(1, 65_535),
    ),
    "max_inflight": (
        "QoS 1 and 2 messages in flight towards one client.",
        to_int(1, 65_535),
    ),
    "max_queued_messages": (
        "Messages queued for one offline session before newer ones are dropped.",
        to_int(0),
    ),
    "topic_alias_maximum": (
        "Topic Alias Maximum announced to MQTT 5.0 clients; 0 turns aliases off.",
        to_int(0, 65_535),
    ),
    "max_keep_alive": (
        "Longest Keep Alive accepted, in seconds; 0 means no limit. An MQTT 5.0 "
        "client that asks for more, or for 0, is told this value as Server Keep "
        "Alive; an MQTT 3.1.1 client, which cannot be told, is refused with "
        "return code 2.",
        to_int(0, 65_535),
    ),
    "connect_timeout": (
        "Seconds a new connection may take to send its CONNECT.",
        to_positive_float,
    ),
    "max_session_expiry_interval": (
        "Longest Session Expiry Interval granted, in seconds.",
        to_int(0, 0xFFFF_FFFF),
    ),
    "retain_available": ("Accept retained messages (true or false).", to_bool),
    "maximum_qos": ("Highest QoS accepted in a PUBLISH: 0, 1 or 2.", to_int(0, 2)),
    "wildcard_subscription_available": (
        "Accept subscriptions with + and # (true or false).",
        to_bool,
    ),
    "subscription_identifier_available": (
        "Accept MQTT 5.0 Subscription Identifiers (true or false).",
        to_bool,
    ),
    "shared_subscription_available": (
        "Accept $share/ subscriptions (true or false).",
        to_bool,
    ),
    "disconnect_on_denied_publish": (
        "Disconnect an MQTT 3.1.1 client whose PUBLISH is denied, instead of "
        "acknowledging a message that goes nowhere (true or false).",
        to_bool,
    ),
    "credential_expiry_reason_code": (
        "DISCONNECT reason code when a credential expires: 0x87 (not-authorized) "
        "or 0xA0 (maximum-connect-time).",
        to_expiry_reason_code,
    ),
}


def _coercer_for_type(kind: Any) -> Callable[[Any], Any]:
    if kind is bool:
        return to_bool
    if kind is int:
        return to_int(0)
    if kind is float:
        return to_positive_float
    if isinstance(kind, type) and issubclass(kind, int):
        return lambda value: kind(to_int(0)(value))
    return to_text


def broker_settings() -> tuple[Setting, ...]:
    """Return a setting for every field of :class:`BrokerSettings`."""
    hints = typing.get_type_hints(BrokerSettings)
    settings = []
    for field in dataclasses.fields(BrokerSettings):
        name = field.name.replace("_", "-")
        help_text, coerce = _BROKER_FIELDS.get(
            field.name,
            (f"Broker setting {field.name}.", _coercer_for_type(hints[field.name])),
        )
        settings.append(
            Setting(
                name=name,
                env=ENV_PREFIX + field.name.upper(),
                help=help_text,
                default=field.default,
                coerce=coerce,
                owner="broker",
                metavar=_metavar(hints[field.name]),
            )
        )
    return tuple(settings)


def _metavar(kind: Any) -> str:
    if kind is bool:
        return "BOOL"
    if kind is float:
        return "SECONDS"
    if kind is int:
        return "N"
    return "VALUE"


# Plugin settings -----------------------------------------------------------

#: Last words of an option name that mark it as a credential.  A name that
#: ends otherwise (``-path``, ``-url``, ``-size``) names something else.
_SECRET_WORDS = frozenset(
    {"secret", "password", "token", "key", "passphrase", "base64"}
)


def looks_secret(name: str) -> bool:
    """Return True when an option's name suggests that it contains a credential."""
    return name.lower().replace("_", "-").split("-")[-1] in _SECRET_WORDS


def plugin_settings(owner: str, options: Iterable[PluginOption]) -> tuple[Setting, ...]:
    """Turn a plugin's options into settings owned by the plugin ``owner``.

    An option is secret, so that the start-up log masks its value, when the
    plugin marks it with ``secret=True`` or its name looks like a credential.
    """
    settings = []
    for option in options:
        settings.append(
            Setting(
                name=option.name,
                env=option.env,
                help=option.help,
                default=option.default,
                coerce=option.coerce,
                secret=bool(getattr(option, "secret", False))
                or looks_secret(option.name),
                owner=owner,
            )
        )
    return tuple(settings)


def combine(
    groups: Sequence[Sequence[Setting]],
) -> tuple[tuple[Setting, ...], list[str]]:
    """Merge groups of settings in order; the first definition of a name wins.

    Plugins may declare a setting the service already has (``password-file``)
    so that they also work elsewhere.  Returns the settings and, for the
    start-up log, a note for each such option whose environment variable
    differs from the one in force.
    """
    combined: dict[str, Setting] = {}
    notes = []
    for group in groups:
        for setting in group:
            first = combined.get(setting.name)
            if first is None:
                combined[setting.name] = setting
            elif first.env != setting.env:
                notes.append(
                    f"Option {setting.option} of {setting.owner} reads "
                    f"{first.env} (as {first.owner} defines it), not {setting.env}"
                )
    return tuple(combined.values()), notes
