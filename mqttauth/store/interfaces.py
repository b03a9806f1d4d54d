"""The storage interface the broker writes its durable state through.

The broker keeps its live state in memory and uses the store as a journal:
it writes each change as it happens, reads everything back once at start-up
with :meth:`ISessionStore.load`, and waits on :meth:`ISessionStore.commit`
before it sends an acknowledgement that promises durability (PUBACK for
QoS 1, PUBREC for QoS 2).  The broker writes only sessions that outlive
their connection; a clean session costs the store nothing.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface

from .records import (
    MessageRecord,
    RetainedRecord,
    SessionRecord,
    StoredState,
    WillRecord,
)


class StoreError(Exception):
    """The store cannot be opened or used: corrupt, locked or too new.

    The message says which, and what the operator can do.
    """


class ISessionStore(Interface):
    durable = Attribute(
        "True when a committed change survives a crash of the process. The "
        "broker skips waiting on commit() when this is False."
    )

    def load() -> StoredState:
        """Return everything stored, for the broker to restore at start-up.

        Raises :class:`StoreError` when the store is unreadable.
        """

    def put_session(record: SessionRecord) -> None:
        """Insert or replace a session, with its subscriptions."""

    def delete_session(client_id: str) -> None:
        """Delete a session with its messages, inbound packet ids and will."""

    def put_message(client_id: str, record: MessageRecord) -> None:
        """Insert or replace the outgoing message ``record.key`` of a session."""

    def delete_message(client_id: str, key: int) -> None:
        """Delete an outgoing message; a missing one is not an error."""

    def put_inbound(client_id: str, packet_id: int) -> None:
        """Record an inbound QoS 2 packet id that waits for PUBREL."""

    def delete_inbound(client_id: str, packet_id: int) -> None:
        """Forget an inbound QoS 2 packet id once PUBREL arrived."""

    def put_retained(record: RetainedRecord) -> None:
        """Insert or replace the retained message of ``record.topic``."""

    def delete_retained(topic: str) -> None:
        """Delete the retained message of a topic; a missing one is fine."""

    def put_will(record: WillRecord) -> None:
        """Insert or replace the pending delayed will of a client id."""

    def delete_will(client_id: str) -> None:
        """Delete the pending will of a client id; a missing one is fine."""

    def commit() -> Any:
        """Return a Deferred that fires once every change made so far is durable.

        Changes may be grouped: many calls to commit() made close together
        can share one write to disk.  Fails with :class:`StoreError` when the
        write failed.
        """

    def close() -> Any:
        """Commit what is pending and release the store; returns a Deferred."""
