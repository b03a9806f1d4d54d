"""Retained messages, kept in a trie of topic levels.

A subscription's filter is matched by walking the trie: a literal level
follows one child, ``+`` every child at that depth, and ``#`` the whole
subtree below (and the node itself, since ``a/#`` also matches ``a``).  Only
the branches a filter can match are visited, never every retained topic.
"""

from __future__ import annotations

from collections.abc import Iterator

from .message import Message


class _Node:
    __slots__ = ("children", "message")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.message: Message | None = None


class RetainedMessages:
    """The retained message of each topic name that has one."""

    def __init__(self) -> None:
        self._root = _Node()
        self._by_topic: dict[str, Message] = {}

    def __len__(self) -> int:
        return len(self._by_topic)

    def get(self, topic: str) -> Message | None:
        return self._by_topic.get(topic)

    def topics(self) -> list[str]:
        return list(self._by_topic)

    def set(self, message: Message) -> None:
        """Store ``message`` as the retained message of its topic."""
        node = self._root
        for level in message.topic.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        node.message = message
        self._by_topic[message.topic] = message

    def discard(self, topic: str) -> bool:
        """Delete the retained message of ``topic``; return whether there was one."""
        if self._by_topic.pop(topic, None) is None:
            return False
        levels = topic.split("/")
        path = [self._root]
        for level in levels:
            path.append(path[-1].children[level])
        path[-1].message = None
        for depth in range(len(levels), 0, -1):
            node = path[depth]
            if node.children or node.message is not None:
                break
            del path[depth - 1].children[levels[depth - 1]]
        return True

    def match(self, topic_filter: str) -> Iterator[Message]:
        """Yield the retained messages whose topic matches ``topic_filter``.

        Topics starting with ``$`` are not matched by a filter that starts
        with a wildcard (MQTT-4.7.2-1).
        """
        if "+" not in topic_filter and "#" not in topic_filter:
            message = self._by_topic.get(topic_filter)
            if message is not None:
                yield message
            return
        levels = topic_filter.split("/")
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, index = stack.pop()
            if index == len(levels):
                if node.message is not None:
                    yield node.message
                continue
            level = levels[index]
            if level == "#":
                yield from self._subtree(node, skip_dollar=index == 0)
            elif level == "+":
                for name, child in node.children.items():
                    if index == 0 and name.startswith("$"):
                        continue
                    stack.append((child, index + 1))
            else:
                child = node.children.get(level)
                if child is not None:
                    stack.append((child, index + 1))

    def _subtree(self, node: _Node, skip_dollar: bool) -> Iterator[Message]:
        if node.message is not None and not skip_dollar:
            yield node.message
        stack = []
        for name, child in node.children.items():
            if skip_dollar and name.startswith("$"):
                continue
            stack.append(child)
        while stack:
            current = stack.pop()
            if current.message is not None:
                yield current.message
            stack.extend(current.children.values())
