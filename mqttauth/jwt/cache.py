"""A bounded cache of verified tokens, so a reconnect storm costs one check each.

Entries are keyed by the SHA-256 digest of the token, so the cache never stores
a token itself, and each lives until the token's expiry.  Tokens without
``exp`` are not cached.  The least recently used entry goes first when the
cache is full.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from mqttauth.jwt.validation import VerifiedToken


def token_digest(token: bytes) -> bytes:
    """Return the cache key of ``token``."""
    return hashlib.sha256(token).digest()


class VerifiedTokenCache:
    """Maps token digests to :class:`VerifiedToken` until each one expires."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, now: float) -> VerifiedToken | None:
        """Return the entry for ``digest``, or ``None`` if absent or expired."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        assert entry.expires_at is not None
        if now >= entry.expires_at:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, verified: VerifiedToken) -> None:
        """Store ``verified`` under ``digest``, unless it has no expiry."""
        if self.max_entries <= 0 or verified.expires_at is None:
            return
        self._entries[digest] = verified
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry, for example after a key was withdrawn."""
        self._entries.clear()
