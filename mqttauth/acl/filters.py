"""Set algebra on MQTT topic filters, for judging subscriptions against rules.

A topic filter stands for the set of topic names it matches.  The ACL needs
three questions answered about those sets:

- :func:`matches`: is a topic name in a filter's set (a PUBLISH, or a
  retained message about to be delivered)?
- :func:`intersects`: do two filters share a topic (does a requested
  subscription reach into a DENY rule)?
- :func:`covered`: is every topic of a requested filter in the union of the
  rule filters' sets (does an ALLOW cover the whole subscription)?

Filters are tuples of levels.  A level is ``"+"`` or ``"#"`` for the
wildcards, any other string for a literal level (empty strings included).
The matching rules are those of MQTT 5.0 section 4.7.  ``+`` matches exactly
one level.  ``#`` matches the parent level and any number of levels below it,
so ``a/#`` matches ``a``.  A topic whose first level starts with ``$`` is not
matched by a filter whose first level is a wildcard.

The module is pure: no I/O, no logging.
"""

from __future__ import annotations

from collections.abc import Sequence

Filter = tuple[str, ...]

SINGLE = "+"
MULTI = "#"


def split_filter(topic_filter: str) -> Filter:
    """Split a topic filter into levels and check the wildcard rules.

    Raises ``ValueError`` naming the filter when it is empty, contains U+0000,
    uses ``+`` or ``#`` inside a level, or has ``#`` anywhere but last.
    """
    if not topic_filter:
        raise ValueError("empty topic filter")
    if "\x00" in topic_filter:
        raise ValueError(f"topic filter {topic_filter!r} contains U+0000")
    levels = tuple(topic_filter.split("/"))
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if level == MULTI:
            if index != last:
                raise ValueError(
                    f"invalid topic filter {topic_filter!r}: '#' must be the last level"
                )
        elif level != SINGLE and ("+" in level or "#" in level):
            raise ValueError(
                f"invalid topic filter {topic_filter!r}: '+' and '#' must fill "
                "a whole level"
            )
    return levels


def has_wildcard(levels: Filter) -> bool:
    """Return whether any level is ``+`` or ``#``."""
    return SINGLE in levels or MULTI in levels


def _is_wildcard(level: str) -> bool:
    return level == SINGLE or level == MULTI


def matches(rule: Filter, topic: Sequence[str]) -> bool:
    """Return whether the topic name (as levels) is in the rule filter's set."""
    if topic[0].startswith("$") and _is_wildcard(rule[0]):
        return False
    count = len(topic)
    for index, level in enumerate(rule):
        if level == MULTI:
            return True
        if index >= count:
            return False
        if level != SINGLE and level != topic[index]:
            return False
    return count == len(rule)


def intersects(first: Filter, second: Filter) -> bool:
    """Return whether some topic name is matched by both filters."""
    first_count = len(first)
    second_count = len(second)
    for index in range(max(first_count, second_count)):
        # One filter has ended: only a '#' in the other still matches the
        # topic that ends here, through the parent-level rule.
        if index >= first_count:
            return second[index] == MULTI
        if index >= second_count:
            return first[index] == MULTI

        left = first[index]
        right = second[index]
        if _is_wildcard(left) or _is_wildcard(right):
            if index == 0 and _dollar_literal(left, right):
                return False
            if left == MULTI or right == MULTI:
                return True
            continue
        if left != right:
            return False
    return True


def _dollar_literal(left: str, right: str) -> bool:
    """Return whether one side is a literal first level starting with ``$``."""
    literal = right if _is_wildcard(left) else left
    return not _is_wildcard(literal) and literal.startswith("$")


def covered(requested: Filter, rules: Sequence[Filter]) -> bool:
    """Return whether every topic of ``requested`` is matched by some rule.

    The union of the rules counts, not only each rule alone: ``a/#`` is
    covered by ``a`` together with ``a/+/#``.  A ``+`` level of the requested
    filter stands for every possible level value, of which there are
    infinitely many, so only rules with a wildcard at that level can cover
    it.  A trailing ``#`` stands for the parent topic and for one more level
    of any value followed by ``#`` again, which is followed until no rule is
    long enough to keep matching.
    """
    dollar_first = not _is_wildcard(requested[0]) and requested[0].startswith("$")
    tail = requested[-1] == MULTI
    fixed = len(requested) - 1 if tail else len(requested)
    candidates: Sequence[Filter] = rules

    for index in range(fixed):
        if _has_multi_at(candidates, index, dollar_first):
            return True
        level = requested[index]
        if level == SINGLE:
            candidates = [
                r for r in candidates if len(r) > index and r[index] == SINGLE
            ]
        else:
            single_matches = not (index == 0 and dollar_first)
            candidates = [
                r
                for r in candidates
                if len(r) > index
                and (r[index] == level or (single_matches and r[index] == SINGLE))
            ]
        if not candidates:
            return False

    if not tail:
        return _has_multi_at(candidates, fixed, False) or any(
            len(r) == fixed for r in candidates
        )
    return _covers_multi_tail(candidates, fixed)


def _has_multi_at(candidates: Sequence[Filter], index: int, dollar_first: bool) -> bool:
    """Return whether a candidate has ``#`` at ``index`` and so covers the rest."""
    if index == 0 and dollar_first:
        return False
    return any(len(r) > index and r[index] == MULTI for r in candidates)


def _covers_multi_tail(candidates: Sequence[Filter], index: int) -> bool:
    """Decide coverage of a requested ``#`` standing at ``index``.

    At each depth the topic that ends there must be matched, except at depth
    0 because a topic has at least one level.  The deeper topics can have any
    value at the next level, so only rules with ``+`` there can match them.
    The candidates shrink at every step, so the loop ends.
    """
    while True:
        if _has_multi_at(candidates, index, False):
            return True
        if index > 0 and not any(len(r) == index for r in candidates):
            return False
        candidates = [r for r in candidates if len(r) > index and r[index] == SINGLE]
        if not candidates:
            return False
        index += 1
