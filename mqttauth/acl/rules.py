"""The ACL rule model and its evaluation.

A :class:`Rule` pairs a topic template with an access (read, write or both),
an outcome (ALLOW or DENY) and a condition on the identity.  A
:class:`RuleSet` turns the rules that apply to one identity into concrete
topic filters once (the identity's :class:`IdentityPolicy`) and decides every
later PUBLISH and SUBSCRIBE check of that identity from it.

Evaluation of one request, in this order:

1. The rules whose condition holds for the identity are selected, and their
   placeholders are filled from the identity.  A rule whose placeholder has
   no usable value (see :class:`TopicTemplate`) is dropped.
2. If any selected DENY rule with the requested access matches the topic
   (PUBLISH) or shares a topic with the requested filter (SUBSCRIBE), the
   result is deny (``False``).
3. Otherwise, if the selected ALLOW rules with that access match the topic,
   or together cover every topic of the requested filter, the result is
   allow (``True``).
4. Otherwise no rule decided: ``None``.  The authorizer turns that into deny,
   or passes the decision on to the next authorizer when configured so.

The order of rules in a file does not matter.  The module is pure: no I/O,
no logging, no Twisted.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from mqttauth.auth.interfaces import Identity

from .filters import (
    Filter,
    covered,
    has_wildcard,
    intersects,
    matches,
    split_filter,
)


class Access(enum.IntFlag):
    """The access a rule grants or denies.

    READ is subscribing to a topic and receiving from it, WRITE is
    publishing to it.
    """

    READ = 1
    WRITE = 2
    READWRITE = 3


class Outcome(enum.Enum):
    """Whether a matching rule allows or denies."""

    ALLOW = "ALLOW"
    DENY = "DENY"


class Attribute(enum.Enum):
    """The identity attributes that conditions test and placeholders name."""

    USERNAME = "username"
    CLIENTID = "clientid"
    ORGANIZATION = "organization"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One test of a condition: the attribute equals ``value`` exactly.

    For ``GROUP`` the test holds when any of the identity's groups equals
    ``value``.
    """

    attribute: Attribute
    value: str

    def holds(self, identity: Identity) -> bool:
        """Return whether the identity passes this test."""
        attribute = self.attribute
        if attribute is Attribute.USERNAME:
            return _username(identity) == self.value
        if attribute is Attribute.CLIENTID:
            return identity.client_id == self.value
        if attribute is Attribute.ORGANIZATION:
            return identity.organization == self.value
        return self.value in identity.groups


_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}|%([uc])")
_ALIASES = {"u": Attribute.USERNAME, "c": Attribute.CLIENTID}
_FORBIDDEN_IN_VALUES = ("+", "#", "/", "\x00")

#: A template level: a literal string, or a sequence of literal strings and
#: placeholders to be joined once the placeholders are filled.
_LevelPart = str | Attribute


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A topic filter that may contain placeholders.

    Placeholders are ``{username}`` (the principal, and no value for an
    anonymous identity), ``{clientid}``, ``{organization}`` and ``{group}``.
    Mosquitto's ``%u`` and ``%c`` are aliases of the first two.  A
    placeholder may stand for a whole level or part of one
    (``dev-{clientid}``).  Its value is inserted literally.  A value that
    could widen the filter makes the template produce nothing: a value that
    is empty or ``None``, that contains ``+``, ``#``, ``/`` or U+0000, or
    that starts with ``$`` where it would begin the topic.
    """

    text: str
    #: Per level: a plain string for literal levels and wildcards, or a tuple
    #: of parts for a level with placeholders.
    levels: tuple[str | tuple[_LevelPart, ...], ...]
    attributes: frozenset[Attribute]

    @classmethod
    def parse(cls, text: str) -> TopicTemplate:
        """Parse a template; raise ``ValueError`` saying what is wrong."""
        literal_skeleton = _PLACEHOLDER.sub(_skeleton_replacement, text)
        split_filter(literal_skeleton)

        levels: list[str | tuple[_LevelPart, ...]] = []
        attributes: set[Attribute] = set()
        for level in text.split("/"):
            parts = _parse_level(level, text)
            if len(parts) == 1 and isinstance(parts[0], str):
                levels.append(parts[0])
            else:
                levels.append(parts)
                attributes.update(p for p in parts if isinstance(p, Attribute))
        return cls(text, tuple(levels), frozenset(attributes))

    def expand(self, identity: Identity) -> Iterator[Filter]:
        """Yield the concrete filters for the identity (none, one, or one per group)."""
        if not self.attributes:
            yield tuple(level for level in self.levels if isinstance(level, str))
            return

        values: dict[Attribute, str] = {}
        for attribute in (
            Attribute.USERNAME,
            Attribute.CLIENTID,
            Attribute.ORGANIZATION,
        ):
            if attribute in self.attributes:
                value = _attribute_value(identity, attribute)
                if value is None or not _usable(value):
                    return
                values[attribute] = value

        if Attribute.GROUP not in self.attributes:
            concrete = self._fill(values)
            if concrete is not None:
                yield concrete
            return

        seen: set[Filter] = set()
        for group in identity.groups:
            if not _usable(group):
                continue
            values[Attribute.GROUP] = group
            concrete = self._fill(values)
            if concrete is not None and concrete not in seen:
                seen.add(concrete)
                yield concrete

    def _fill(self, values: dict[Attribute, str]) -> Filter | None:
        levels: list[str] = []
        for index, level in enumerate(self.levels):
            if isinstance(level, str):
                levels.append(level)
                continue
            text = "".join(p if isinstance(p, str) else values[p] for p in level)
            # A value must not turn the first level into a '$' topic, which
            # the broker reserves for itself.
            if (
                index == 0
                and text.startswith("$")
                and not _starts_with_literal_dollar(level)
            ):
                return None
            levels.append(text)
        return tuple(levels)


def _skeleton_replacement(match: re.Match[str]) -> str:
    # Placeholders become a neutral letter, so that the wildcard check runs
    # on the literal structure of the template.
    return "x"


def _parse_level(level: str, text: str) -> tuple[_LevelPart, ...]:
    parts: list[_LevelPart] = []
    position = 0
    for match in _PLACEHOLDER.finditer(level):
        if match.start() > position:
            parts.append(level[position : match.start()])
        name, alias = match.group(1), match.group(2)
        if alias:
            parts.append(_ALIASES[alias])
        else:
            try:
                parts.append(Attribute(name))
            except ValueError:
                known = ", ".join("{" + a.value + "}" for a in Attribute)
                raise ValueError(
                    f"unknown placeholder {{{name}}} in {text!r}; "
                    f"expected one of {known}"
                ) from None
        position = match.end()
    if position < len(level) or not parts:
        parts.append(level[position:])
    return tuple(parts)


def _starts_with_literal_dollar(level: tuple[_LevelPart, ...]) -> bool:
    first = level[0]
    return isinstance(first, str) and first.startswith("$")


def _attribute_value(identity: Identity, attribute: Attribute) -> str | None:
    if attribute is Attribute.USERNAME:
        return _username(identity)
    if attribute is Attribute.CLIENTID:
        return identity.client_id
    return identity.organization


def _usable(value: str) -> bool:
    """Return whether a placeholder value can be inserted without widening."""
    if not value:
        return False
    return not any(character in value for character in _FORBIDDEN_IN_VALUES)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ACL rule.

    ``anonymous_only`` restricts the rule to anonymous identities (see
    :attr:`Identity.anonymous`); ``requirements`` must all hold.  ``origin``
    names where the rule came from (``acl.conf:12``) for messages.
    """

    topic: TopicTemplate
    access: Access
    outcome: Outcome
    requirements: tuple[Requirement, ...] = ()
    anonymous_only: bool = False
    origin: str = ""

    def applies_to(self, identity: Identity) -> bool:
        """Return whether the rule's condition holds for the identity."""
        if self.anonymous_only and not is_anonymous(identity):
            return False
        return all(requirement.holds(identity) for requirement in self.requirements)


def _username(identity: Identity) -> str | None:
    """Return the user name that rules see: none for an anonymous identity.

    As in Mosquitto, a client that sent no User Name matches no ``user``
    section, ``username=`` test or ``{username}`` rule, whatever principal
    the authenticator gave it for the logs.
    """
    if is_anonymous(identity):
        return None
    return identity.principal


def is_anonymous(identity: Identity) -> bool:
    """Return whether the identity is a client without User Name
    (:attr:`Identity.anonymous`).  Mosquitto-style ``topic`` lines above the
    first ``user`` or ``group`` line apply only to such identities."""
    return identity.anonymous


@dataclass(slots=True)
class _FilterSet:
    """The concrete filters of one access and outcome, split for fast lookup."""

    exact: set[str] = field(default_factory=set)
    wildcards: list[Filter] = field(default_factory=list)
    _all: list[Filter] | None = None

    def add(self, concrete: Filter) -> None:
        if has_wildcard(concrete):
            if concrete not in self.wildcards:
                self.wildcards.append(concrete)
        else:
            self.exact.add("/".join(concrete))

    def matches(self, topic: str, levels: Sequence[str]) -> bool:
        if topic in self.exact:
            return True
        return any(matches(rule, levels) for rule in self.wildcards)

    def filters(self) -> list[Filter]:
        """Return every filter of the set; built once, after the last add."""
        if self._all is None:
            exact = [tuple(topic.split("/")) for topic in self.exact]
            self._all = exact + self.wildcards
        return self._all


class IdentityPolicy:
    """The rules of one identity, with placeholders filled, and its decisions.

    Decisions are cached per topic and per filter, up to ``cache_size``
    entries each; the oldest entry goes first when a cache is full.
    """

    __slots__ = (
        "_allow_read",
        "_allow_write",
        "_deny_read",
        "_deny_write",
        "_publish_cache",
        "_subscribe_cache",
        "_cache_size",
    )

    def __init__(
        self, rules: Iterable[Rule], identity: Identity, cache_size: int
    ) -> None:
        self._allow_read = _FilterSet()
        self._allow_write = _FilterSet()
        self._deny_read = _FilterSet()
        self._deny_write = _FilterSet()
        self._publish_cache: dict[str, bool | None] = {}
        self._subscribe_cache: dict[str, bool | None] = {}
        self._cache_size = cache_size
        for rule in rules:
            if not rule.applies_to(identity):
                continue
            for concrete in rule.topic.expand(identity):
                self._add(rule, concrete)

    def _add(self, rule: Rule, concrete: Filter) -> None:
        deny = rule.outcome is Outcome.DENY
        if rule.access & Access.READ:
            (self._deny_read if deny else self._allow_read).add(concrete)
        if rule.access & Access.WRITE:
            (self._deny_write if deny else self._allow_write).add(concrete)

    def may_publish(self, topic: str) -> bool | None:
        """Decide a PUBLISH to a topic name: True, False, or None for no match."""
        cache = self._publish_cache
        try:
            return cache[topic]
        except KeyError:
            pass
        decision = self._decide_topic(topic, self._deny_write, self._allow_write)
        _remember(cache, topic, decision, self._cache_size)
        return decision

    def may_subscribe(self, topic_filter: str) -> bool | None:
        """Decide a subscription to a filter (or a read of one topic name).

        Allowed only when no DENY rule shares a topic with the filter and the
        ALLOW rules together match every topic the filter can match.  An
        invalid filter is denied.
        """
        cache = self._subscribe_cache
        try:
            return cache[topic_filter]
        except KeyError:
            pass
        decision = self._decide_filter(topic_filter)
        _remember(cache, topic_filter, decision, self._cache_size)
        return decision

    def _decide_topic(
        self, topic: str, deny: _FilterSet, allow: _FilterSet
    ) -> bool | None:
        if not topic or "+" in topic or "#" in topic or "\x00" in topic:
            return False
        levels = topic.split("/")
        if deny.matches(topic, levels):
            return False
        if allow.matches(topic, levels):
            return True
        return None

    def _decide_filter(self, topic_filter: str) -> bool | None:
        try:
            requested = split_filter(topic_filter)
        except ValueError:
            return False
        if not has_wildcard(requested):
            return self._decide_topic(topic_filter, self._deny_read, self._allow_read)

        deny = self._deny_read
        if any(_topic_in_filter(topic, requested) for topic in deny.exact):
            return False
        if any(intersects(requested, rule) for rule in deny.wildcards):
            return False
        if covered(requested, self._allow_read.filters()):
            return True
        return None


def _topic_in_filter(topic: str, requested: Filter) -> bool:
    return matches(requested, topic.split("/"))


def _remember(
    cache: dict[str, bool | None], key: str, value: bool | None, size: int
) -> None:
    if len(cache) >= size:
        del cache[next(iter(cache))]
    cache[key] = value


_IdentityKey = tuple[str, str, str | None, tuple[str, ...], bool]


class RuleSet:
    """An immutable list of rules with a bounded cache of identity policies.

    The broker checks the same few identities over and over, so each
    identity's :class:`IdentityPolicy` is built once and kept, up to
    ``identity_cache_size`` identities (oldest dropped first).  Replace the
    whole RuleSet to change rules; the caches go with it.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        identity_cache_size: int = 4096,
        decision_cache_size: int = 256,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._policies: dict[_IdentityKey, IdentityPolicy] = {}
        self._by_object: dict[int, tuple[Identity, IdentityPolicy]] = {}
        self._identity_cache_size = identity_cache_size
        self._decision_cache_size = decision_cache_size

    def __len__(self) -> int:
        return len(self.rules)

    def policy_for(self, identity: Identity) -> IdentityPolicy:
        """Return the identity's policy, building it on first use."""
        # Fast path: a connection passes the same Identity object on every
        # call.  The cache keeps a reference to the object, so its id() cannot
        # be reused by another object while the entry exists.
        entry = self._by_object.get(id(identity))
        if entry is not None and entry[0] is identity:
            return entry[1]

        key: _IdentityKey = (
            identity.principal,
            identity.client_id,
            identity.organization,
            tuple(identity.groups),
            is_anonymous(identity),
        )
        policy = self._policies.get(key)
        if policy is None:
            policy = IdentityPolicy(self.rules, identity, self._decision_cache_size)
            if len(self._policies) >= self._identity_cache_size:
                del self._policies[next(iter(self._policies))]
            self._policies[key] = policy
        if len(self._by_object) >= self._identity_cache_size:
            del self._by_object[next(iter(self._by_object))]
        self._by_object[id(identity)] = (identity, policy)
        return policy

    def may_publish(self, identity: Identity, topic: str) -> bool | None:
        """Decide a PUBLISH; see :meth:`IdentityPolicy.may_publish`."""
        return self.policy_for(identity).may_publish(topic)

    def may_subscribe(self, identity: Identity, topic_filter: str) -> bool | None:
        """Decide a subscription or a read; see :meth:`IdentityPolicy.may_subscribe`."""
        return self.policy_for(identity).may_subscribe(topic_filter)


class AclSyntaxError(ValueError):
    """A rule file or rule text that cannot be parsed.

    ``source`` names the file (or the setting for inline rules), ``line`` is
    the 1-based line number, and ``reason`` describes what is wrong there.
    """

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}, line {line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason
