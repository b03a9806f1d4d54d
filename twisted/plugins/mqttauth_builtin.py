"""The built-in authenticator and authorizer plugins of mqttauth.

Each module-level object provides ``IPlugin`` and ``IAuthenticatorPlugin`` or
``IAuthorizerPlugin``, so ``getPlugins`` finds it and ``--authenticator`` or
``--authorizer`` chooses it by name.  The modules behind them are imported
here, so keep this file to plugin objects only.
"""

from mqttauth.acl.authorizer import AclFilePlugin
from mqttauth.auth.allow_all import AllowAllPlugin
from mqttauth.auth.anonymous import AnonymousPlugin
from mqttauth.auth.passwords import PasswordFilePlugin

anonymous = AnonymousPlugin()
password_file = PasswordFilePlugin()
allow_all = AllowAllPlugin()
acl_file = AclFilePlugin()
