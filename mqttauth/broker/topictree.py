"""The subscription tree: which sessions want a PUBLISH to a topic name.

Filters are stored in a trie keyed by topic level, so matching a topic walks
only the branches that can match it: the literal level, ``+`` and ``#`` at
each depth.  The cost of a match grows with the topic's depth and the number
of matching filters, not with the number of subscriptions.  Results are
cached per topic name; every subscription change clears the cache.
``docs/routing.md`` describes the structure.
"""

from __future__ import annotations

from typing import Any

#: Topic names whose match results are kept; past this the cache starts over.
CACHE_SIZE = 10_000


class Subscription:
    """One subscription of one session, as the broker keeps it.

    ``topic_filter`` is the filter as the client sent it (``$share/...``
    kept); ``match_filter`` is the part that is matched against topics.
    """

    __slots__ = (
        "topic_filter",
        "match_filter",
        "share_name",
        "qos",
        "no_local",
        "retain_as_published",
        "retain_handling",
        "subscription_identifier",
    )

    def __init__(
        self,
        topic_filter: str,
        match_filter: str,
        share_name: str | None,
        qos: int,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        subscription_identifier: int | None = None,
    ) -> None:
        self.topic_filter = topic_filter
        self.match_filter = match_filter
        self.share_name = share_name
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling
        self.subscription_identifier = subscription_identifier


class Delivery:
    """The delivery of one topic to one session, merged over its matching filters.

    MQTT 3.1.1 sends one copy at the highest QoS among the matching
    subscriptions, MQTT 5.0 one copy carrying every matching Subscription
    Identifier.  ``local`` is the same merge over the subscriptions without
    No Local, used when the publisher is the subscriber itself (``None``
    when every matching subscription has No Local).
    """

    __slots__ = (
        "session",
        "qos",
        "subscription_identifiers",
        "retain_as_published",
        "local",
    )

    def __init__(self, session: Any) -> None:
        self.session = session
        self.qos = -1
        self.subscription_identifiers: tuple[int, ...] = ()
        self.retain_as_published = False
        self.local: Delivery | None = None

    def add(self, subscription: Subscription) -> None:
        if subscription.qos > self.qos:
            self.qos = subscription.qos
        if subscription.subscription_identifier is not None:
            self.subscription_identifiers = tuple(
                sorted(
                    (
                        *self.subscription_identifiers,
                        subscription.subscription_identifier,
                    )
                )
            )
        if subscription.retain_as_published:
            self.retain_as_published = True


class SharedGroup:
    """The members of one ``$share/{ShareName}/{filter}`` group.

    Each message goes to one member, chosen round-robin among the members
    whose session is connected, or among all members when none is.
    """

    __slots__ = ("share_name", "topic_filter", "members", "next_index")

    def __init__(self, share_name: str, topic_filter: str) -> None:
        self.share_name = share_name
        self.topic_filter = topic_filter
        #: Client id to (session, subscription), in joining order.
        self.members: dict[str, tuple[Any, Subscription]] = {}
        self.next_index = 0

    def choose(self) -> tuple[Any, Subscription] | None:
        """Return the member that gets the next message, or None if empty."""
        members = list(self.members.values())
        count = len(members)
        if not count:
            return None
        start = self.next_index % count
        for offset in range(count):
            member = members[(start + offset) % count]
            if member[0].connection is not None:
                self.next_index = start + offset + 1
                return member
        self.next_index = start + 1
        return members[start]


class _Node:
    __slots__ = ("children", "subscribers", "shared")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        #: Client id to (session, subscription) for plain subscriptions.
        self.subscribers: dict[str, tuple[Any, Subscription]] = {}
        self.shared: dict[str, SharedGroup] = {}

    def is_empty(self) -> bool:
        return not (self.children or self.subscribers or self.shared)


class MatchResult:
    """The sessions and shared groups that a topic name reaches."""

    __slots__ = ("deliveries", "groups")

    def __init__(self, deliveries: list[Delivery], groups: list[SharedGroup]) -> None:
        self.deliveries = deliveries
        self.groups = groups


_EMPTY = MatchResult([], [])


class SubscriptionTree:
    """A trie of topic filters with a cache of topic-name match results."""

    def __init__(self) -> None:
        self._root = _Node()
        self._cache: dict[str, MatchResult] = {}
        self.count = 0

    def add(self, client_id: str, session: Any, subscription: Subscription) -> None:
        """Insert or replace the subscription of ``client_id`` to its filter."""
        node = self._root
        for level in subscription.match_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        if subscription.share_name is None:
            if client_id not in node.subscribers:
                self.count += 1
            node.subscribers[client_id] = (session, subscription)
        else:
            group = node.shared.get(subscription.share_name)
            if group is None:
                group = node.shared[subscription.share_name] = SharedGroup(
                    subscription.share_name, subscription.match_filter
                )
            if client_id not in group.members:
                self.count += 1
            group.members[client_id] = (session, subscription)
        self._cache.clear()

    def remove(self, client_id: str, subscription: Subscription) -> bool:
        """Delete the subscription; return whether it was there."""
        path = [self._root]
        for level in subscription.match_filter.split("/"):
            child = path[-1].children.get(level)
            if child is None:
                return False
            path.append(child)
        node = path[-1]
        if subscription.share_name is None:
            removed = node.subscribers.pop(client_id, None) is not None
        else:
            group = node.shared.get(subscription.share_name)
            removed = (
                group is not None and group.members.pop(client_id, None) is not None
            )
            if group is not None and not group.members:
                del node.shared[subscription.share_name]
        if not removed:
            return False
        self.count -= 1
        self._prune(path, subscription.match_filter.split("/"))
        self._cache.clear()
        return True

    def _prune(self, path: list[_Node], levels: list[str]) -> None:
        for depth in range(len(levels), 0, -1):
            if not path[depth].is_empty():
                break
            del path[depth - 1].children[levels[depth - 1]]

    def match(self, topic: str) -> MatchResult:
        """Return the deliveries and shared groups for a PUBLISH to ``topic``."""
        result = self._cache.get(topic)
        if result is None:
            result = self._match(topic)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[topic] = result
        return result

    def _match(self, topic: str) -> MatchResult:
        levels = topic.split("/")
        depth = len(levels)
        found: list[_Node] = []
        # A filter starting with a wildcard never matches a topic whose first
        # level starts with '$' (MQTT-4.7.2-1).
        dollar = topic.startswith("$")
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, index = stack.pop()
            children = node.children
            if not children:
                if index == depth:
                    found.append(node)
                continue
            wildcard_allowed = index > 0 or not dollar
            if wildcard_allowed:
                hash_node = children.get("#")
                if hash_node is not None:
                    found.append(hash_node)
            if index == depth:
                found.append(node)
                continue
            if wildcard_allowed:
                plus_node = children.get("+")
                if plus_node is not None:
                    stack.append((plus_node, index + 1))
            literal = children.get(levels[index])
            if literal is not None:
                stack.append((literal, index + 1))
        if not found:
            return _EMPTY
        return self._merge(found)

    def _merge(self, nodes: list[_Node]) -> MatchResult:
        deliveries: dict[str, Delivery] = {}
        groups: list[SharedGroup] = []
        for node in nodes:
            for client_id, (session, subscription) in node.subscribers.items():
                delivery = deliveries.get(client_id)
                if delivery is None:
                    delivery = deliveries[client_id] = Delivery(session)
                delivery.add(subscription)
                if not subscription.no_local:
                    if delivery.local is None:
                        delivery.local = Delivery(session)
                    delivery.local.add(subscription)
            if node.shared:
                groups.extend(node.shared.values())
        return MatchResult(list(deliveries.values()), groups)

    def clear_cache(self) -> None:
        """Forget cached matches (after a change the tree cannot see itself)."""
        self._cache.clear()
