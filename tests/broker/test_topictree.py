"""The subscription tree and the retained-message trie against the reference matcher."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mqttauth.broker.message import Message
from mqttauth.broker.retained import RetainedMessages
from mqttauth.broker.topictree import Subscription, SubscriptionTree
from mqttauth.mqtt.topics import topic_matches

LEVELS = st.sampled_from(["a", "b", "$s", ""])
TOPICS = st.lists(LEVELS, min_size=1, max_size=4).map("/".join).filter(bool)
FILTER_LEVELS = st.sampled_from(["a", "b", "$s", "", "+"])


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(FILTER_LEVELS, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels) or "#"


class FakeSession:
    connection = None

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id


def plain(topic_filter: str, qos: int = 0, **options: object) -> Subscription:
    return Subscription(topic_filter, topic_filter, None, qos, **options)


@settings(max_examples=300)
@given(st.lists(filters(), min_size=1, max_size=8, unique=True), TOPICS)
def test_tree_matches_like_reference(topic_filters, topic):
    tree = SubscriptionTree()
    for index, topic_filter in enumerate(topic_filters):
        tree.add(f"c{index}", FakeSession(f"c{index}"), plain(topic_filter))
    matched = {delivery.session.client_id for delivery in tree.match(topic).deliveries}
    expected = {
        f"c{index}"
        for index, topic_filter in enumerate(topic_filters)
        if topic_matches(topic_filter, topic)
    }
    assert matched == expected


@settings(max_examples=300)
@given(st.lists(TOPICS, min_size=1, max_size=8, unique=True), filters())
def test_retained_matches_like_reference(topics, topic_filter):
    retained = RetainedMessages()
    for topic in topics:
        retained.set(Message(topic, b"x", 0, True))
    found = {message.topic for message in retained.match(topic_filter)}
    assert found == {topic for topic in topics if topic_matches(topic_filter, topic)}


def test_overlap_merges_per_session():
    tree = SubscriptionTree()
    session = FakeSession("c")
    tree.add("c", session, plain("a/+", 0, subscription_identifier=2))
    tree.add("c", session, plain("a/#", 1, subscription_identifier=1))
    [delivery] = tree.match("a/b").deliveries
    assert delivery.qos == 1
    assert delivery.subscription_identifiers == (1, 2)


def test_no_local_merge_kept_apart():
    tree = SubscriptionTree()
    session = FakeSession("c")
    tree.add("c", session, plain("a/+", 0, no_local=True))
    tree.add("c", session, plain("a/#", 1))
    [delivery] = tree.match("a/b").deliveries
    assert delivery.local is not None
    assert delivery.local.qos == 1


def test_remove_prunes_and_clears_cache():
    tree = SubscriptionTree()
    subscription = plain("a/b/c")
    tree.add("c", FakeSession("c"), subscription)
    assert len(tree.match("a/b/c").deliveries) == 1
    assert tree.remove("c", subscription)
    assert tree.match("a/b/c").deliveries == []
    assert tree.count == 0
    assert tree._root.children == {}


def test_retained_discard_prunes():
    retained = RetainedMessages()
    retained.set(Message("a/b", b"x", 0, True))
    assert retained.discard("a/b")
    assert list(retained.match("#")) == []
    assert retained._root.children == {}
