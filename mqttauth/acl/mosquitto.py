"""A parser for Mosquitto's ``acl_file`` syntax, extended with ``group`` sections.

The lines it reads::

    # a comment
    topic [read|write|readwrite|deny] TOPIC
    pattern [read|write|readwrite|deny] TOPIC
    user NAME
    group NAME

As in Mosquitto 2.0: without an access word the access is ``readwrite``, and
``deny`` denies both reading and writing.  ``topic`` lines above the first
``user`` or ``group`` line apply to anonymous clients only (those that gave
no User Name).  ``topic`` lines after ``user NAME`` apply to the identity
whose principal is ``NAME``, and after ``group NAME`` to identities in group
``NAME``.  ``pattern`` lines apply to every identity wherever they stand.
Both kinds of line may use the placeholders of
:class:`mqttauth.acl.rules.TopicTemplate`; ``%u`` and ``%c`` are aliases of
``{username}`` and ``{clientid}``.

Unlike Mosquitto, the parser rejects the whole file at the first bad line
with an :class:`AclSyntaxError` naming it.
"""

from __future__ import annotations

from .rules import (
    Access,
    AclSyntaxError,
    Attribute,
    Outcome,
    Requirement,
    Rule,
    TopicTemplate,
)

_ACCESS_WORDS = {
    "read": (Access.READ, Outcome.ALLOW),
    "write": (Access.WRITE, Outcome.ALLOW),
    "readwrite": (Access.READWRITE, Outcome.ALLOW),
    "deny": (Access.READWRITE, Outcome.DENY),
}


def parse_mosquitto_acl(text: str, source: str = "<acl>") -> list[Rule]:
    """Parse ACL text in Mosquitto's syntax into rules.

    ``source`` names the file in error messages and rule origins.  Raises
    :class:`AclSyntaxError` with the line number and the problem.
    """
    rules: list[Rule] = []
    # The section that later 'topic' lines belong to: None for the anonymous
    # section at the top, else the requirement of a 'user' or 'group' line.
    section: Requirement | None = None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, rest = _split_word(line)

        if keyword in ("user", "group"):
            if not rest:
                raise AclSyntaxError(source, number, f"missing name after {keyword!r}")
            attribute = Attribute.USERNAME if keyword == "user" else Attribute.GROUP
            section = Requirement(attribute, rest)
        elif keyword in ("topic", "pattern"):
            rule = _parse_topic_line(keyword, rest, section, f"{source}:{number}")
            if isinstance(rule, str):
                raise AclSyntaxError(source, number, rule)
            rules.append(rule)
        else:
            raise AclSyntaxError(
                source,
                number,
                f"unknown keyword {keyword!r}; expected topic, pattern, user or group",
            )
    return rules


def _split_word(text: str) -> tuple[str, str]:
    """Split off the first word; the rest keeps its inner whitespace."""
    parts = text.split(None, 1)
    if len(parts) == 1:
        return parts[0], ""
    return parts[0], parts[1].strip()


def _parse_topic_line(
    keyword: str, rest: str, section: Requirement | None, origin: str
) -> Rule | str:
    """Build the rule of a ``topic`` or ``pattern`` line, or return the error."""
    if not rest:
        return f"missing topic after {keyword!r}"

    # As in Mosquitto, a single word after the keyword is the topic.  With
    # more words, the first is the access and the rest of the line, spaces
    # included, is the topic.
    word, topic = _split_word(rest)
    if not topic:
        access, outcome = Access.READWRITE, Outcome.ALLOW
        topic = word
    elif word in _ACCESS_WORDS:
        access, outcome = _ACCESS_WORDS[word]
    else:
        return f"unknown access {word!r}; expected read, write, readwrite or deny"

    try:
        template = TopicTemplate.parse(topic)
    except ValueError as error:
        return str(error)

    if keyword == "pattern":
        return Rule(template, access, outcome, origin=origin)
    if section is None:
        return Rule(template, access, outcome, anonymous_only=True, origin=origin)
    return Rule(template, access, outcome, requirements=(section,), origin=origin)
