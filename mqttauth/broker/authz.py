"""The authorizer chain: ask each authorizer in turn until one decides.

Each authorizer returns True (allow), False (deny), None (no decision) or a
Deferred firing with one of them.  The first True or False decides; when all
return None the decision is deny.  When every authorizer returns a plain
value the chain returns a plain bool, so the hot path makes no Deferred.
An authorizer that raises (or fails its Deferred) counts as a deny and is
logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from mqttauth.auth.interfaces import IAuthorizer, Identity

log = Logger(namespace="mqttauth.broker.authz")

Decision = bool | Deferred


class AuthorizerChain:
    """Decides publish and subscribe requests through a sequence of authorizers."""

    def __init__(self, authorizers: Sequence[IAuthorizer]) -> None:
        self._authorizers = tuple(authorizers)

    def publish(
        self, identity: Identity, topic: str, qos: int, retain: bool
    ) -> Decision:
        """Return whether ``identity`` may publish to ``topic``, maybe as a Deferred."""
        return self._decide(0, "authorize_publish", (identity, topic, qos, retain))

    def subscribe(self, identity: Identity, topic_filter: str, qos: int) -> Decision:
        """Return whether ``identity`` may subscribe to ``topic_filter``.

        ``topic_filter`` must already be stripped of any ``$share/{ShareName}/``.
        """
        return self._decide(0, "authorize_subscribe", (identity, topic_filter, qos))

    def _decide(self, start: int, method: str, args: tuple[Any, ...]) -> Decision:
        authorizers = self._authorizers
        for index in range(start, len(authorizers)):
            try:
                answer = getattr(authorizers[index], method)(*args)
            except Exception:
                log.failure(
                    "Authorizer {authorizer!r} raised in {method}; denied",
                    authorizer=authorizers[index],
                    method=method,
                )
                return False
            if answer is True or answer is False:
                return answer
            if isinstance(answer, Deferred):
                deferred: Deferred = answer
                deferred.addCallbacks(
                    self._resume,
                    self._deferred_failed,
                    (index, method, args),
                    None,
                    (authorizers[index], method),
                )
                return deferred
            if answer is not None:
                log.error(
                    "Authorizer {authorizer!r} returned {answer!r} from {method}, "
                    "not True, False or None; denied",
                    authorizer=authorizers[index],
                    answer=answer,
                    method=method,
                )
                return False
        return False

    def _resume(
        self, answer: object, index: int, method: str, args: tuple[Any, ...]
    ) -> Decision:
        if answer is True or answer is False:
            return answer
        if answer is not None:
            log.error(
                "Authorizer returned {answer!r} from {method}, not True, False or "
                "None; denied",
                answer=answer,
                method=method,
            )
            return False
        return self._decide(index + 1, method, args)

    def _deferred_failed(self, failure: Failure, authorizer: Any, method: str) -> bool:
        log.failure(
            "Authorizer {authorizer!r} failed in {method}; denied",
            failure=failure,
            authorizer=authorizer,
            method=method,
        )
        return False


def when_decided(decision: Decision, callback: Any, *args: Any) -> Deferred | None:
    """Call ``callback(allowed, *args)`` now for a bool, or when the Deferred fires.

    Return the Deferred (with the callback added) or None when it ran at once.
    """
    if isinstance(decision, Deferred):
        return decision.addCallback(callback, *args)
    callback(decision, *args)
    return None
