import pytest

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
