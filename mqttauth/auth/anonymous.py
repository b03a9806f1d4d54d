"""The ``anonymous`` authenticator: every client is let in, for development.

Nothing is verified.  The identity's principal is the CONNECT User Name when
the client sent one, so a client can claim any principal it likes: use this
only where every client is trusted.  A client that sent no User Name gets its
client identifier as principal, for the logs, and is marked anonymous
(:attr:`Identity.anonymous` is ``True``).  The ACL treats such an identity
as having no user name, as Mosquitto does, and applies to it the
Mosquitto-style ``topic`` lines above the first ``user`` or ``group`` line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from .interfaces import (
    AuthRequest,
    AuthSuccess,
    IAuthenticator,
    IAuthenticatorPlugin,
    Identity,
)


@implementer(IAuthenticator)
class AnonymousAuthenticator:
    """Accept every CONNECT without checking anything."""

    #: No Authentication Method is accepted: a CONNECT naming one gets
    #: CONNACK 0x8C from the broker.
    methods: tuple[str, ...] = ()

    def authenticate(self, request: AuthRequest) -> AuthSuccess:
        """Return an identity named after the User Name, else the client id."""
        if request.username is not None:
            identity = Identity(request.username, request.client_id)
        else:
            identity = Identity(request.client_id, request.client_id, anonymous=True)
        return AuthSuccess(identity)


@implementer(IPlugin, IAuthenticatorPlugin)
class AnonymousPlugin:
    """The ``anonymous`` authenticator plugin."""

    name = "anonymous"
    description = "Let every client in without checking anything (development only)"
    options: tuple[Any, ...] = ()
    log = Logger()

    def build(
        self, settings: Mapping[str, Any], reactor: Any
    ) -> AnonymousAuthenticator:
        """Return the authenticator, warning that nothing is checked."""
        self.log.warn(
            "The anonymous authenticator lets every client in and trusts the User "
            "Name it sends; use it for development only"
        )
        return AnonymousAuthenticator()
