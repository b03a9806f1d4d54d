"""A third-party plugin dropped into a ``twisted/plugins`` folder on PYTHONPATH.

Twisted searches the ``twisted/plugins`` folder of every ``sys.path`` entry
that is not the ``twisted`` package itself, so the test writes
``TMP/twisted/plugins/thirdparty_plugin.py`` (no ``__init__.py`` anywhere in
``TMP/twisted``), puts ``TMP`` on PYTHONPATH, and selects the plugins by name.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support.pahoclient import MQTTv5, PahoClient
from tests.support.process import run_twistd, start_broker
from tests.support.tls import PKI, make_pki

pytestmark = pytest.mark.e2e

PLUGIN = textwrap.dedent(
    '''
    """Third-party plugins: a shared-token authenticator and a prefix authorizer."""

    from twisted.plugin import IPlugin
    from zope.interface import implementer

    from mqttauth.auth.interfaces import (
        AuthenticationError, AuthSuccess, IAuthenticator, IAuthenticatorPlugin,
        IAuthorizer, IAuthorizerPlugin, Identity, PluginOption,
    )
    from mqttauth.mqtt.constants import ReasonCode


    @implementer(IAuthenticator)
    class TokenAuthenticator:
        methods = ()

        def __init__(self, token):
            self.token = token

        def authenticate(self, request):
            certificate = request.peer_certificate
            if certificate is not None:
                name = certificate.get_subject().CN
                return AuthSuccess(Identity(name, request.client_id))
            if request.password != self.token.encode():
                raise AuthenticationError(
                    ReasonCode.BAD_USER_NAME_OR_PASSWORD, "wrong token", "bad_token"
                )
            principal = request.username or "anyone"
            return AuthSuccess(Identity(principal, request.client_id))


    @implementer(IPlugin, IAuthenticatorPlugin)
    class TokenPlugin:
        name = "thirdparty-token"
        description = "Admit clients whose password is the shared token"
        options = (PluginOption("thirdparty-token", "THIRDPARTY_TOKEN", "The token."),)

        def build(self, settings, reactor):
            return TokenAuthenticator(settings["thirdparty_token"])


    @implementer(IAuthorizer)
    class PrefixAuthorizer:
        """Allow topics under the principal's name and the prefixes in a file."""

        def __init__(self, path):
            self.path = path
            self.reload()

        def reload(self):
            with open(self.path) as stream:
                self.prefixes = [line.strip() for line in stream if line.strip()]
            return True

        def _allowed(self, identity, topic):
            prefixes = [identity.principal + "/", *self.prefixes]
            return any(topic.startswith(prefix) for prefix in prefixes)

        def authorize_publish(self, identity, topic, qos, retain):
            return self._allowed(identity, topic)

        def authorize_subscribe(self, identity, topic_filter, qos):
            return self._allowed(identity, topic_filter)


    @implementer(IPlugin, IAuthorizerPlugin)
    class PrefixPlugin:
        name = "thirdparty-prefix"
        description = "Allow the principal's own topics and listed prefixes"
        options = (
            PluginOption(
                "thirdparty-prefix-file", "THIRDPARTY_PREFIX_FILE", "Prefix file"
            ),
        )

        def build(self, settings, reactor):
            return PrefixAuthorizer(settings["thirdparty_prefix_file"])


    token = TokenPlugin()
    prefix = PrefixPlugin()
    '''
)


@pytest.fixture
def plugin_root(tmp_path: Path) -> Path:
    root = tmp_path / "tmp"
    plugins = root / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "thirdparty_plugin.py").write_text(PLUGIN)
    return root


@pytest.fixture
def prefixes(tmp_path: Path) -> Path:
    path = tmp_path / "prefixes"
    path.write_text("shared/\n")
    return path


def test_listed_by_help_plugins(plugin_root: Path) -> None:
    result = run_twistd("--help-plugins", pythonpath=[plugin_root])
    assert "thirdparty-token" in result.stdout
    assert "thirdparty-prefix" in result.stdout


def test_options_on_command_line(plugin_root: Path) -> None:
    result = run_twistd("--help", pythonpath=[plugin_root])
    assert "--thirdparty-token=" in result.stdout
    assert "[env: THIRDPARTY_TOKEN]" in result.stdout


def test_absent_without_folder() -> None:
    result = run_twistd("--authenticator", "thirdparty-token")
    assert result.returncode == 1
    assert "no authenticator plugin named 'thirdparty-token'" in result.stdout


def test_selected_by_name(plugin_root: Path, prefixes: Path) -> None:
    with start_broker(
        "--authenticator",
        "thirdparty-token",
        "--authorizer",
        "thirdparty-prefix",
        "--thirdparty-prefix-file",
        str(prefixes),
        env={"THIRDPARTY_TOKEN": "open-sesame"},
        pythonpath=[plugin_root],
    ) as broker:
        denied = PahoClient(broker.port, "d", MQTTv5)
        denied.client.username_pw_set("eve", "guess")
        _, refused, _ = denied.connect()
        denied.client.loop_stop()

        client = PahoClient(broker.port, "c", MQTTv5)
        client.client.username_pw_set("zoe", "open-sesame")
        _, accepted, _ = client.connect()
        own = client.subscribe("zoe/#", qos=1)
        shared = client.subscribe("shared/#", qos=1)
        other = client.subscribe("max/#", qos=1)
        client.publish("zoe/x", b"mine", qos=1)
        message = client.next_message()
        client.disconnect()
    assert refused.value == 0x86
    assert not accepted.is_failure
    assert [own[0].value, shared[0].value, other[0].value] == [1, 1, 0x87]
    assert message.topic == "zoe/x"


def test_sighup_reloads_thirdparty(plugin_root: Path, prefixes: Path) -> None:
    import signal

    with start_broker(
        "--authenticator",
        "thirdparty-token",
        "--authorizer",
        "thirdparty-prefix",
        "--thirdparty-prefix-file",
        str(prefixes),
        "--thirdparty-token",
        "t",
        pythonpath=[plugin_root],
    ) as broker:
        prefixes.write_text("shared/\nextra/\n")
        offset = len(broker.log())
        broker.send_signal(signal.SIGHUP)
        broker.wait_for_log("Reloaded authorizer thirdparty-prefix", after=offset)
        client = PahoClient(broker.port, "c", MQTTv5)
        client.client.username_pw_set("zoe", "t")
        client.connect()
        (code,) = client.subscribe("extra/#", qos=1)
        client.disconnect()
    assert code.value == 1


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_options(pki: PKI, prefixes: Path) -> tuple[str, ...]:
    return (
        "--authenticator",
        "thirdparty-token",
        "--thirdparty-token",
        "t",
        "--authorizer",
        "thirdparty-prefix",
        "--thirdparty-prefix-file",
        str(prefixes),
        "--tls-client-ca",
        str(pki.ca_cert),
        "--tls-require-client-cert",
    )


def tls_listen(pki: PKI) -> tuple[str]:
    return (
        f"ssl:0:interface=127.0.0.1:privateKey={pki.server_key}:certKey={pki.server_cert}",
    )


def test_client_certificate_reaches_authenticator(
    plugin_root: Path, prefixes: Path, pki: PKI
) -> None:
    with start_broker(
        *tls_options(pki, prefixes), listen=tls_listen(pki), pythonpath=[plugin_root]
    ) as broker:
        client = PahoClient(broker.port, "c", MQTTv5, host="localhost")
        client.client.tls_set(
            ca_certs=str(pki.ca_cert),
            certfile=str(pki.client_cert),
            keyfile=str(pki.client_key),
        )
        _, reason, _ = client.connect()
        # The certificate's CN, device-1, became the principal.
        (code,) = client.subscribe("device-1/#", qos=1)
        client.disconnect()
    assert not reason.is_failure
    assert code.value == 1


def test_required_client_certificate_missing(
    plugin_root: Path, prefixes: Path, pki: PKI
) -> None:
    with start_broker(
        *tls_options(pki, prefixes), listen=tls_listen(pki), pythonpath=[plugin_root]
    ) as broker:
        client = PahoClient(broker.port, "c", MQTTv5, host="localhost")
        client.client.username_pw_set("zoe", "t")
        client.client.tls_set(ca_certs=str(pki.ca_cert))
        with pytest.raises((OSError, TimeoutError)):
            client.connect()
        client.client.loop_stop()


FAILING_PLUGIN = textwrap.dedent(
    '''
    """An authorizer plugin whose build() raises something other than ConfigError."""

    from twisted.plugin import IPlugin
    from zope.interface import implementer

    from mqttauth.auth.interfaces import IAuthorizerPlugin


    @implementer(IPlugin, IAuthorizerPlugin)
    class FailingPlugin:
        name = "failing"
        description = "Raises in build()"
        options = ()

        def build(self, settings, reactor):
            raise RuntimeError("rule database unreachable")


    failing = FailingPlugin()
    '''
)


def test_build_error_stops_without_traceback(tmp_path: Path) -> None:
    plugins = tmp_path / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "failing_plugin.py").write_text(FAILING_PLUGIN)
    result = run_twistd(
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--authenticator",
        "anonymous",
        "--authorizer",
        "failing",
        pythonpath=[tmp_path],
    )
    assert result.returncode == 1, result.stdout
    assert "--authorizer: plugin 'failing' failed to build" in result.stdout
    assert "RuntimeError: rule database unreachable" in result.stdout
    assert "Traceback" not in result.stdout
