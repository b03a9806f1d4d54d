"""The ``allow-all`` authorizer: every PUBLISH and SUBSCRIBE is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from .interfaces import IAuthorizer, IAuthorizerPlugin, Identity


@implementer(IAuthorizer)
class AllowAllAuthorizer:
    """Allow everything to every identity."""

    def authorize_publish(
        self, identity: Identity, topic: str, qos: int, retain: bool
    ) -> bool:
        """Return True."""
        return True

    def authorize_subscribe(
        self, identity: Identity, topic_filter: str, qos: int
    ) -> bool:
        """Return True."""
        return True


@implementer(IPlugin, IAuthorizerPlugin)
class AllowAllPlugin:
    """The ``allow-all`` authorizer plugin."""

    name = "allow-all"
    description = "Allow every PUBLISH and SUBSCRIBE (the default authorizer)"
    options: tuple[Any, ...] = ()

    def build(self, settings: Mapping[str, Any], reactor: Any) -> AllowAllAuthorizer:
        """Return the authorizer; it takes no settings."""
        return AllowAllAuthorizer()
