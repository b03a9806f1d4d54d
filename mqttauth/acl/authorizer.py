"""The ``acl-file`` authorizer: rules from a file and from inline CSV text.

The file is either in Mosquitto's ``acl_file`` syntax or in the CSV row
syntax (see :mod:`mqttauth.acl.mosquitto` and :mod:`mqttauth.acl.tabular`).
With format ``auto`` a file whose name ends in ``.csv`` is read as CSV.  Any
other file is judged by its first line that is neither blank nor a comment:
when that line's first word is ``topic``, ``pattern``, ``user`` or
``group``, the file is in Mosquitto's syntax, otherwise it is CSV.  Inline
rules (``MQTTAUTH_ACL_RULES``) are always CSV.  When both a file and inline
rules are given, the rules of both apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from mqttauth.auth.interfaces import (
    IAuthorizer,
    IAuthorizerPlugin,
    Identity,
    PluginOption,
)
from mqttauth.service.config import ConfigError

from .mosquitto import parse_mosquitto_acl
from .rules import AclSyntaxError, Rule, RuleSet
from .tabular import parse_csv_rules

FORMATS = ("auto", "mosquitto", "csv")
#: The source name of inline rules in messages and rule origins.
INLINE_SOURCE = "acl-rules"
NO_MATCH_CHOICES = ("deny", "next")
_MOSQUITTO_KEYWORDS = frozenset({"topic", "pattern", "user", "group"})


def detect_format(text: str, path: str) -> str:
    """Return ``"mosquitto"`` or ``"csv"`` for a file, by name, then content."""
    if path.lower().endswith(".csv"):
        return "csv"
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        words = stripped.split(None, 1)
        if words[0] in _MOSQUITTO_KEYWORDS:
            return "mosquitto"
        if stripped.startswith("#") and not stripped[1:].lstrip().startswith(","):
            continue
        return "csv"
    return "mosquitto"


def parse_rules(text: str, source: str, rule_format: str) -> list[Rule]:
    """Parse rule text in the given format (``auto`` detects it from ``source``)."""
    if rule_format == "auto":
        rule_format = detect_format(text, source)
    if rule_format == "csv":
        return parse_csv_rules(text, source)
    return parse_mosquitto_acl(text, source)


def read_rule_file(path: str, rule_format: str = "auto") -> list[Rule]:
    """Read and parse a rule file; raise ``OSError`` or :class:`AclSyntaxError`."""
    # utf-8-sig drops the byte order mark that some Windows editors write.
    with open(path, encoding="utf-8-sig") as file:
        text = file.read()
    return parse_rules(text, path, rule_format)


@implementer(IAuthorizer)
class AclAuthorizer:
    """Decide PUBLISH and SUBSCRIBE from ACL rules, reloadable from a file.

    Decisions are plain booleans, never Deferreds.  When no rule decides,
    the result is ``False`` (deny), or ``None`` (ask the next authorizer)
    when ``no_match`` is ``"next"``.
    """

    log = Logger()

    def __init__(
        self,
        path: str | None = None,
        inline: str | None = None,
        rule_format: str = "auto",
        no_match: str = "deny",
    ) -> None:
        """Load the rules; raise ``OSError`` or :class:`AclSyntaxError`."""
        if rule_format not in FORMATS:
            raise ValueError(f"unknown ACL format {rule_format!r}")
        if no_match not in NO_MATCH_CHOICES:
            raise ValueError(f"unknown no-match choice {no_match!r}")
        self.path = path
        self._format = rule_format
        self._inline_rules = parse_csv_rules(inline, INLINE_SOURCE) if inline else []
        self._no_match: bool | None = False if no_match == "deny" else None
        self._rules = RuleSet(self._load())

    def _load(self) -> list[Rule]:
        rules = read_rule_file(self.path, self._format) if self.path else []
        return rules + self._inline_rules

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules in force."""
        return self._rules.rules

    def reload(self) -> bool:
        """Re-read the rule file and put its rules in force.

        Returns whether the new rules are in force.  A file that cannot be
        read or parsed leaves the old rules in force, and the error (with
        its line number for a syntax error) is logged.
        """
        if not self.path:
            self.log.info("ACL reload: no rule file, inline rules stay in force")
            return True
        try:
            rules = self._load()
        except AclSyntaxError as error:
            self.log.error(
                "ACL reload failed at {path}, line {line}: {reason}; keeping the "
                "{count} rules in force",
                path=self.path,
                line=error.line,
                reason=error.reason,
                count=len(self._rules),
            )
            return False
        except (OSError, UnicodeDecodeError) as error:
            self.log.error(
                "ACL reload failed, cannot read {path}: {error}; keeping the "
                "{count} rules in force",
                path=self.path,
                error=error,
                count=len(self._rules),
            )
            return False
        self._rules = RuleSet(rules)
        self.log.info(
            "ACL reloaded: {count} rules from {path}", count=len(rules), path=self.path
        )
        return True

    def authorize_publish(
        self, identity: Identity, topic: str, qos: int, retain: bool
    ) -> bool | None:
        """Decide a PUBLISH (or a will) to ``topic``; QoS and retain do not matter."""
        decision = self._rules.may_publish(identity, topic)
        return self._no_match if decision is None else decision

    def authorize_subscribe(
        self, identity: Identity, topic_filter: str, qos: int
    ) -> bool | None:
        """Decide a subscription to ``topic_filter``, or a read of a topic name."""
        decision = self._rules.may_subscribe(identity, topic_filter)
        return self._no_match if decision is None else decision


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def coerce(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(
                f"invalid {name} {value!r}; expected one of {', '.join(choices)}"
            )
        return text

    return coerce


@implementer(IPlugin, IAuthorizerPlugin)
class AclFilePlugin:
    """The ``acl-file`` authorizer plugin."""

    name = "acl-file"
    description = (
        "ACL rules from a Mosquitto acl_file or a CSV file, reloaded on SIGHUP"
    )
    options = (
        PluginOption(
            "acl-file",
            "MQTTAUTH_ACL_FILE",
            "Path of the ACL file (Mosquitto acl_file syntax or CSV rows).",
        ),
        PluginOption(
            "acl-rules",
            "MQTTAUTH_ACL_RULES",
            "Inline ACL rules as CSV rows 'Topic, Action, Condition, Outcome', "
            "one per line; added to the file's rules.",
        ),
        PluginOption(
            "acl-format",
            "MQTTAUTH_ACL_FORMAT",
            "Syntax of the ACL file: auto (by .csv name, else by content), "
            "mosquitto or csv.",
            default="auto",
            coerce=_choice("ACL format", FORMATS),
        ),
        PluginOption(
            "acl-no-match",
            "MQTTAUTH_ACL_NO_MATCH",
            "What happens when no ACL rule decides: deny, or next (ask the "
            "next authorizer).",
            default="deny",
            coerce=_choice("ACL no-match choice", NO_MATCH_CHOICES),
        ),
    )

    def build(self, settings: Mapping[str, Any], reactor: Any) -> AclAuthorizer:
        """Load the rules; raise :class:`ConfigError` naming the bad setting."""
        path = settings.get("acl_file") or None
        inline = settings.get("acl_rules") or None
        rule_format = settings.get("acl_format") or "auto"
        no_match = settings.get("acl_no_match") or "deny"
        if path is None and inline is None:
            raise ConfigError(
                "acl-file",
                "the acl-file authorizer needs a rule file (--acl-file or "
                "MQTTAUTH_ACL_FILE) or inline rules (MQTTAUTH_ACL_RULES)",
            )

        try:
            authorizer = AclAuthorizer(path, inline, rule_format, no_match)
        except AclSyntaxError as error:
            if error.source == INLINE_SOURCE:
                message = f"invalid rule at line {error.line}: {error.reason}"
                raise ConfigError(INLINE_SOURCE, message) from None
            raise ConfigError("acl-file", f"invalid ACL file: {error}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(
                "acl-file", f"cannot read the ACL file {path!r}: {_describe(error)}"
            ) from None
        except ValueError as error:
            raise ConfigError("acl-format", str(error)) from None

        AclAuthorizer.log.info(
            "ACL: {count} rules from {sources}",
            count=len(authorizer.rules),
            sources=", ".join(
                s for s in (path, INLINE_SOURCE if inline else None) if s
            ),
        )
        return authorizer


def _describe(error: OSError | UnicodeDecodeError) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return error.strerror or str(error)
