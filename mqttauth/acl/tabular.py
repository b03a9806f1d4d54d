"""A parser for ACL rules as CSV rows of ``Topic, Action, Condition, Outcome``.

This is the row form of Waterstream's ``AUTHORIZATION_RULES``::

    Topic, Action, Condition, Outcome
    t/{organization}/{username}/#, ALL, , ALLOW
    admin/#, ALL, group=admin, ALLOW
    admin/audit, PUBLISH, , DENY

- The header row is optional and recognised by its four column names.
- ``Action`` is ``PUBLISH`` (write), ``SUBSCRIBE`` (read: subscribe and
  receive) or ``ALL``; ``Outcome`` is ``ALLOW`` or ``DENY``.  Both are read
  without regard to case.
- ``Condition`` is empty (every identity) or tests joined with ``&``, all of
  which must hold: ``username=alice&group=admin``.  A test is
  ``ATTRIBUTE=VALUE`` with ATTRIBUTE one of ``username``, ``clientid``,
  ``organization``, ``group``, compared exactly.  A value cannot contain
  ``&``, nor the words ``and`` or ``or`` between spaces, which are rejected
  as a likely attempt at a conjunction.
- Cells are trimmed; a cell with a comma is quoted the CSV way
  (``"a,b/#"``).  Each row is one line, and blank lines are skipped.
- A line starting with ``#`` is a comment, unless its first cell is exactly
  ``#`` (a rule for the topic filter ``#``).

Bad rows raise :class:`AclSyntaxError` with the line number.
"""

from __future__ import annotations

import csv
import re

from .rules import (
    Access,
    AclSyntaxError,
    Attribute,
    Outcome,
    Requirement,
    Rule,
    TopicTemplate,
)

_COMMENT = re.compile(r"\s*#(?!\s*,)")
_WORD_OPERATOR = re.compile(r"\s(and|or)\s", re.IGNORECASE)
_HEADER = ["topic", "action", "condition", "outcome"]
_ACTIONS = {
    "PUBLISH": Access.WRITE,
    "SUBSCRIBE": Access.READ,
    "ALL": Access.READWRITE,
}


def parse_csv_rules(text: str, source: str = "<rules>") -> list[Rule]:
    """Parse CSV rule rows into rules; see the module documentation.

    ``source`` names the file or setting in error messages and rule origins.
    """
    rules: list[Rule] = []
    header_allowed = True
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or _is_comment(raw):
            continue
        cells = _cells(raw, source, number)
        if header_allowed and [cell.lower() for cell in cells] == _HEADER:
            header_allowed = False
            continue
        header_allowed = False
        rules.append(_parse_row(cells, source, number))
    return rules


def _is_comment(line: str) -> bool:
    """Return whether a line is a comment rather than a row for topic ``#``."""
    return _COMMENT.match(line) is not None


def _cells(line: str, source: str, number: int) -> list[str]:
    try:
        rows = list(csv.reader([line], skipinitialspace=True, strict=True))
    except csv.Error as error:
        raise AclSyntaxError(source, number, f"invalid CSV: {error}") from None
    return [cell.strip() for cell in rows[0]]


def _parse_row(cells: list[str], source: str, number: int) -> Rule:
    if len(cells) != 4:
        raise AclSyntaxError(
            source,
            number,
            f"expected 4 cells (Topic, Action, Condition, Outcome), found {len(cells)}",
        )
    topic, action, condition, outcome = cells

    try:
        template = TopicTemplate.parse(topic)
    except ValueError as error:
        raise AclSyntaxError(source, number, str(error)) from None

    access = _ACTIONS.get(action.upper())
    if access is None:
        raise AclSyntaxError(
            source,
            number,
            f"unknown action {action!r}; expected PUBLISH, SUBSCRIBE or ALL",
        )

    try:
        decision = Outcome(outcome.upper())
    except ValueError:
        raise AclSyntaxError(
            source, number, f"unknown outcome {outcome!r}; expected ALLOW or DENY"
        ) from None

    requirements = _parse_condition(condition, source, number)
    return Rule(
        template,
        access,
        decision,
        requirements=requirements,
        origin=f"{source}:{number}",
    )


def _parse_condition(text: str, source: str, number: int) -> tuple[Requirement, ...]:
    """Parse ``username=alice&group=admin`` into requirements."""
    if not text:
        return ()
    requirements: list[Requirement] = []
    for test in text.split("&"):
        name, equals, value = test.partition("=")
        name = name.strip()
        value = value.strip()
        if not equals:
            raise AclSyntaxError(
                source, number, f"condition test {test.strip()!r} has no '='"
            )
        try:
            attribute = Attribute(name.lower())
        except ValueError:
            known = ", ".join(a.value for a in Attribute)
            raise AclSyntaxError(
                source,
                number,
                f"unknown condition attribute {name!r}; expected one of {known}",
            ) from None
        if not value:
            raise AclSyntaxError(
                source, number, f"condition test {name!r} has no value"
            )
        if _WORD_OPERATOR.search(value):
            # 'username=eve and group=x' would otherwise compare the user
            # name with 'eve and group=x', and a DENY rule would never match.
            raise AclSyntaxError(
                source,
                number,
                f"condition value {value!r} contains 'and' or 'or'; join tests "
                "with '&' (conditions are conjunctions; use one row per alternative)",
            )
        requirements.append(Requirement(attribute, value))
    return tuple(requirements)
