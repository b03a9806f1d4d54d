"""The ``jwt`` authenticator plugin: ``twistd mqttauth --authenticator jwt``.

Its settings are the ``JWT_*`` environment variables, the matching
``--jwt-...`` options and TOML keys; see docs/authentication.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from mqttauth.auth.interfaces import IAuthenticator, IAuthenticatorPlugin
from mqttauth.jwt.settings import OPTIONS


@implementer(IPlugin, IAuthenticatorPlugin)
class JWTAuthenticatorPlugin:
    name = "jwt"
    description = "JWTs signed by static keys or a JWKS URL (OIDC, Entra ID)"
    options = OPTIONS

    def build(self, settings: Mapping[str, Any], reactor: Any) -> IAuthenticator:
        """Return the authenticator; raises ConfigError naming a bad setting."""
        from mqttauth.jwt.authenticator import build_authenticator

        return build_authenticator(settings, reactor)


jwt_authenticator = JWTAuthenticatorPlugin()
