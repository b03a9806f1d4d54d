"""The filter algebra against a brute-force oracle and worked cases."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqttauth.acl.filters import covered, intersects, matches, split_filter

# Levels the generated filters use; "z" is never used by a filter, so it
# stands for "any other value" when the oracle enumerates topics.
FILTER_LEVELS = ["a", "b", "$s", ""]
TOPIC_LEVELS = ["a", "b", "$s", "", "z"]


def topics_up_to(depth):
    for count in range(1, depth + 1):
        yield from itertools.product(TOPIC_LEVELS, repeat=count)


@st.composite
def filters(draw):
    count = draw(st.integers(min_value=1, max_value=3))
    levels = [draw(st.sampled_from(FILTER_LEVELS + ["+"])) for _ in range(count)]
    if draw(st.booleans()):
        levels.append("#")
    return tuple(levels)


def universe(*groups):
    longest = max(len(f) for group in groups for f in group)
    return list(topics_up_to(longest + 1))


@settings(max_examples=300, deadline=None)
@given(filters(), filters())
def test_intersects_agrees_with_oracle(first, second):
    expected = any(
        matches(first, topic) and matches(second, topic)
        for topic in universe([first, second])
    )
    assert intersects(first, second) == expected


@settings(max_examples=300, deadline=None)
@given(filters(), st.lists(filters(), min_size=0, max_size=3))
def test_covered_agrees_with_oracle(requested, rules):
    expected = all(
        any(matches(rule, topic) for rule in rules)
        for topic in universe([requested], rules)
        if matches(requested, topic)
    )
    assert covered(requested, rules) == expected


@pytest.mark.parametrize(
    ("rule", "topic", "expected"),
    [
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a", False),
        ("a/+", "a/", True),
        ("+/+", "a/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a//b", "a//b", True),
        ("a/b", "a/b/c", False),
    ],
)
def test_matches_cases(rule, topic, expected):
    assert matches(split_filter(rule), topic.split("/")) is expected


@pytest.mark.parametrize(
    ("requested", "rules", "expected"),
    [
        ("t/#", ["t/#"], True),
        ("t/#", ["#"], True),
        ("t/#", ["t/+"], False),
        ("t/#", ["t/+/#"], False),
        ("t/#", ["t", "t/+/#"], True),
        ("t/+", ["t/#"], True),
        ("t/+", ["t/a"], False),
        ("t/+/x", ["t/+/+"], True),
        ("#", ["+/#"], True),
        ("$SYS/#", ["#"], False),
        ("$SYS/#", ["+/#"], False),
        ("$SYS/#", ["$SYS/#"], True),
        ("+/x", ["$SYS/x", "a/x"], False),
        ("a", ["a/#"], True),
    ],
)
def test_covered_cases(requested, rules, expected):
    rule_filters = [split_filter(rule) for rule in rules]
    assert covered(split_filter(requested), rule_filters) is expected


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("t/#", "t/secret", True),
        ("t/+", "t/a/b", False),
        ("t/#", "t", True),
        ("#", "$SYS/x", False),
        ("+/#", "+", True),
        ("a/+/c", "a/b/+", True),
        ("a/b", "a/c", False),
    ],
)
def test_intersects_cases(first, second, expected):
    assert intersects(split_filter(first), split_filter(second)) is expected


@pytest.mark.parametrize("text", ["", "a/#/b", "a/b#", "a+/b", "#/", "a\x00b"])
def test_split_filter_rejects(text):
    with pytest.raises(ValueError):
        split_filter(text)
