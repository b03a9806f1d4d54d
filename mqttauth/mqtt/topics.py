"""Topic names, topic filters, matching and shared subscriptions.

The rules are those of MQTT 3.1.1 section 4.7 and MQTT 5.0 section 4.7:

- Topic names and filters are at least one character and at most 65,535
  UTF-8 bytes long, and never contain U+0000.
- A topic name contains no wildcard.
- In a filter, ``+`` fills a whole level, and ``#`` fills the last level
  alone: ``a/+/c``, ``+``, ``a/#`` and ``#`` are valid; ``a+``, ``a/#/b`` and
  ``a#`` are not.
- ``+`` matches exactly one level (an empty one too), ``#`` matches its
  parent level and every level below, and a filter that starts with a
  wildcard does not match a topic name that starts with ``$``.
- A shared subscription is ``$share/{ShareName}/{filter}``: the share name
  is at least one character and contains none of ``/``, ``+`` and ``#``, and
  the filter after it is a valid, non-empty filter (MQTT 5.0 section 4.8.2).
"""

from .errors import TopicFilterInvalidError, TopicNameInvalidError

_MAX_LENGTH = 65_535
_SHARE_PREFIX = "$share/"


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def validate_topic_name(topic: str) -> None:
    """Raise TopicNameInvalidError unless ``topic`` is a valid topic name."""
    if not topic:
        raise TopicNameInvalidError("topic name is empty")
    if "+" in topic or "#" in topic:
        raise TopicNameInvalidError(f"topic name contains a wildcard: {topic!r}")
    if "\x00" in topic:
        raise TopicNameInvalidError(f"topic name contains U+0000: {topic!r}")
    if _utf8_length(topic) > _MAX_LENGTH:
        raise TopicNameInvalidError("topic name is longer than 65535 bytes")


def _validate_filter_levels(topic_filter: str, whole: str) -> None:
    if not topic_filter:
        raise TopicFilterInvalidError(f"topic filter is empty: {whole!r}")
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if level == "+":
            continue
        if level == "#":
            if index != last:
                raise TopicFilterInvalidError(
                    f"'#' is not the last level of the topic filter {whole!r}"
                )
            continue
        if "+" in level or "#" in level:
            raise TopicFilterInvalidError(
                f"wildcard does not fill a whole level of the topic filter {whole!r}"
            )


def validate_topic_filter(topic_filter: str) -> None:
    """Raise TopicFilterInvalidError unless ``topic_filter`` is a valid filter.

    A ``$share/`` filter must also follow the shared subscription rules.
    """
    if "\x00" in topic_filter:
        raise TopicFilterInvalidError(f"topic filter contains U+0000: {topic_filter!r}")
    if _utf8_length(topic_filter) > _MAX_LENGTH:
        raise TopicFilterInvalidError("topic filter is longer than 65535 bytes")
    shared = parse_shared_subscription(topic_filter)
    if shared is None:
        _validate_filter_levels(topic_filter, topic_filter)
    else:
        _validate_filter_levels(shared[1], topic_filter)


def parse_shared_subscription(topic_filter: str) -> tuple[str, str] | None:
    """Split ``$share/{ShareName}/{filter}`` into share name and filter.

    Return None for a filter that is not shared. Raise
    TopicFilterInvalidError for a ``$share/`` filter with an empty share
    name, a share name containing ``+`` or ``#``, or no filter after it.
    The returned filter is not checked further; ``validate_topic_filter``
    does that.
    """
    if not topic_filter.startswith(_SHARE_PREFIX):
        return None
    share_name, separator, inner_filter = topic_filter[len(_SHARE_PREFIX) :].partition(
        "/"
    )
    if not share_name:
        raise TopicFilterInvalidError(
            f"shared subscription without a share name: {topic_filter!r}"
        )
    if "+" in share_name or "#" in share_name:
        raise TopicFilterInvalidError(
            f"share name contains a wildcard: {topic_filter!r}"
        )
    if not separator or not inner_filter:
        raise TopicFilterInvalidError(
            f"shared subscription without a topic filter: {topic_filter!r}"
        )
    return share_name, inner_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Return whether the valid filter ``topic_filter`` matches ``topic``.

    Shared subscriptions are matched on their inner filter: strip the
    ``$share/{ShareName}/`` part first.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    if topic_filter == topic:
        return True
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    topic_depth = len(topic_levels)
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= topic_depth:
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == topic_depth
