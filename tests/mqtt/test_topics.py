import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttauth.mqtt.errors import TopicFilterInvalidError, TopicNameInvalidError
from mqttauth.mqtt.topics import (
    parse_shared_subscription,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)

VALID_NAMES = ["a", "/", "a/b/c", "a//b", "$SYS/uptime", " ", "ü/€", "a" * 65535]
INVALID_NAMES = ["", "a/+", "+", "#", "a/#", "a+b", "a\x00b", "é" * 32768]


@pytest.mark.parametrize("topic", VALID_NAMES, ids=repr)
def test_topic_name_valid(topic: str) -> None:
    validate_topic_name(topic)


@pytest.mark.parametrize("topic", INVALID_NAMES, ids=repr)
def test_topic_name_invalid(topic: str) -> None:
    with pytest.raises(TopicNameInvalidError):
        validate_topic_name(topic)


VALID_FILTERS = [
    "#",
    "+",
    "a/#",
    "a/+/c",
    "+/+",
    "/+",
    "+/",
    "a//b",
    "$SYS/#",
    "$share/group/a/+",
    "$share/group/#",
    "$share/g//",
    "$share",
    "$sharex/a",
]
INVALID_FILTERS = [
    "",
    "a#",
    "#/a",
    "a/#/b",
    "a+",
    "a/+b/c",
    "++",
    "##",
    "a\x00",
    "$share/",
    "$share//a",
    "$share/g",
    "$share/g/",
    "$share/g+/a",
    "$share/#/a",
    "$share/g/a#",
]


@pytest.mark.parametrize("topic_filter", VALID_FILTERS, ids=repr)
def test_topic_filter_valid(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize("topic_filter", INVALID_FILTERS, ids=repr)
def test_topic_filter_invalid(topic_filter: str) -> None:
    with pytest.raises(TopicFilterInvalidError):
        validate_topic_filter(topic_filter)


MATCHES = [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/+", "a/b", True),
    ("a/+", "a/b/c", False),
    ("a/+", "a", False),
    ("a/+", "a/", True),
    ("+/+", "/", True),
    ("+", "/a", False),
    ("/+", "/a", True),
    ("a/#", "a", True),
    ("a/#", "a/b/c", True),
    ("a/#", "ab", False),
    ("#", "a/b", True),
    ("#", "/", True),
    ("+/b/#", "a/b", True),
    ("a/b/c", "a/b", False),
    ("a/b", "a/b/c", False),
    ("#", "$SYS/x", False),
    ("+/x", "$SYS/x", False),
    ("$SYS/#", "$SYS/x", True),
    ("$SYS/+", "$SYS/x", True),
    ("$SYS", "$SYS", True),
    ("A/b", "a/b", False),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHES, ids=repr)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_shared_subscription_parsed() -> None:
    assert parse_shared_subscription("$share/g1/a/+/c") == ("g1", "a/+/c")


def test_shared_subscription_hash() -> None:
    assert parse_shared_subscription("$share/g/#") == ("g", "#")


def test_unshared_filter_is_none() -> None:
    assert parse_shared_subscription("a/b") is None


def test_share_without_slash_is_none() -> None:
    assert parse_shared_subscription("$share") is None


@pytest.mark.parametrize(
    "topic_filter", ["$share/", "$share//a", "$share/g", "$share/g/", "$share/+/a"]
)
def test_shared_subscription_invalid(topic_filter: str) -> None:
    with pytest.raises(TopicFilterInvalidError):
        parse_shared_subscription(topic_filter)


def reference_match(filter_levels: list[str], topic_levels: list[str]) -> bool:
    """Match level lists recursively, straight from the rules' wording."""
    if not filter_levels:
        return not topic_levels
    head, rest = filter_levels[0], filter_levels[1:]
    if head == "#":
        return True
    if not topic_levels:
        return False
    if head != "+" and head != topic_levels[0]:
        return False
    return reference_match(rest, topic_levels[1:])


level_text = st.sampled_from(["a", "b", "", "$x", "ab"])
filter_level = st.sampled_from(["a", "b", "", "+", "$x"])


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(filter_level, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels) or "+"


topics = st.lists(level_text, min_size=1, max_size=5).map("/".join).filter(bool)


@given(filters(), topics)
def test_matches_reference(topic_filter: str, topic: str) -> None:
    validate_topic_filter(topic_filter)
    expected = reference_match(topic_filter.split("/"), topic.split("/"))
    if topic.startswith("$") and topic_filter[0] in "+#":
        expected = False
    assert topic_matches(topic_filter, topic) is expected


@given(topics)
def test_topic_matches_itself(topic: str) -> None:
    assert topic_matches(topic, topic)


@given(topics)
def test_hash_matches_plain_topics(topic: str) -> None:
    assert topic_matches("#", topic) is not topic.startswith("$")
