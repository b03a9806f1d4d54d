"""The built-in plugins: discovery by name, interfaces, anonymous and allow-all."""

import importlib.util
from pathlib import Path

import pytest
from twisted.plugin import IPlugin, getPlugins
from zope.interface.verify import verifyObject

import twisted.plugins
from mqttauth.auth.allow_all import AllowAllAuthorizer, AllowAllPlugin
from mqttauth.auth.anonymous import AnonymousAuthenticator, AnonymousPlugin
from mqttauth.auth.interfaces import (
    AuthRequest,
    IAuthenticator,
    IAuthenticatorPlugin,
    IAuthorizer,
    IAuthorizerPlugin,
    Identity,
)

DROPIN = Path(__file__).parents[2] / "twisted" / "plugins" / "mqttauth_builtin.py"


def load_dropin():
    spec = importlib.util.spec_from_file_location("mqttauth_builtin_under_test", DROPIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("attribute", "interface", "name"),
    [
        ("anonymous", IAuthenticatorPlugin, "anonymous"),
        ("password_file", IAuthenticatorPlugin, "password-file"),
        ("allow_all", IAuthorizerPlugin, "allow-all"),
        ("acl_file", IAuthorizerPlugin, "acl-file"),
    ],
)
def test_dropin_objects(attribute, interface, name):
    plugin = getattr(load_dropin(), attribute)
    assert verifyObject(IPlugin, plugin)
    assert verifyObject(interface, plugin)
    assert plugin.name == name


def test_dropin_has_no_package_marker():
    assert not (DROPIN.parent / "__init__.py").exists()


def test_get_plugins_finds_builtins():
    authenticators = {p.name for p in getPlugins(IAuthenticatorPlugin, twisted.plugins)}
    authorizers = {p.name for p in getPlugins(IAuthorizerPlugin, twisted.plugins)}
    assert {"anonymous", "password-file"} <= authenticators
    assert {"allow-all", "acl-file"} <= authorizers


def test_plugin_options_name_environment():
    dropin = load_dropin()
    envs = {
        o.name: o.env
        for p in (dropin.password_file, dropin.acl_file)
        for o in p.options
    }
    assert envs["password-file"] == "MQTTAUTH_PASSWORD_FILE"
    assert envs["acl-file"] == "MQTTAUTH_ACL_FILE"
    assert envs["acl-rules"] == "MQTTAUTH_ACL_RULES"


def anonymous_request(username):
    return AuthRequest("dev-7", 5, "127.0.0.1:1", username=username)


def test_anonymous_uses_user_name():
    identity = (
        AnonymousAuthenticator().authenticate(anonymous_request("alice")).identity
    )
    assert identity.principal == "alice"
    assert identity.client_id == "dev-7"
    assert identity.anonymous is False


def test_anonymous_without_user_name():
    identity = AnonymousAuthenticator().authenticate(anonymous_request(None)).identity
    assert identity.principal == "dev-7"
    assert identity.anonymous is True


def test_anonymous_provides_interfaces():
    assert verifyObject(IAuthenticator, AnonymousAuthenticator())
    assert verifyObject(IAuthenticatorPlugin, AnonymousPlugin())
    assert isinstance(AnonymousPlugin().build({}, None), AnonymousAuthenticator)


def test_allow_all_allows():
    authorizer = AllowAllPlugin().build({}, None)
    identity = Identity("a", "c")
    assert authorizer.authorize_publish(identity, "$SYS/x", 2, True) is True
    assert authorizer.authorize_subscribe(identity, "#", 2) is True


def test_allow_all_provides_interfaces():
    assert verifyObject(IAuthorizer, AllowAllAuthorizer())
    assert verifyObject(IAuthorizerPlugin, AllowAllPlugin())
