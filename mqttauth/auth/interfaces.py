"""The interfaces between the broker and its authentication and ACL plugins.

The broker asks an :class:`IAuthenticator` to decide every CONNECT and every
MQTT 5.0 re-authentication, and a chain of :class:`IAuthorizer` objects to
decide every PUBLISH, SUBSCRIBE, retained-message delivery and will.  Both
answer with plain values or with Deferreds, so a plugin that needs I/O (a JWKS
fetch, a database) can take its time while a plugin that decides from memory
costs the hot path nothing.

Plugins are found with :func:`twisted.plugin.getPlugins` as objects that
provide :class:`IAuthenticatorPlugin` or :class:`IAuthorizerPlugin`, and are
chosen by their ``name``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zope.interface import Attribute, Interface

from mqttauth.mqtt.constants import ReasonCode


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection is, as an authenticator established it.

    The ACL placeholders are filled from these fields: ``{username}`` from
    ``principal``, ``{clientid}`` from ``client_id``, ``{organization}`` from
    ``organization`` and ``{group}`` from each of ``groups``.
    """

    principal: str
    client_id: str
    organization: str | None = None
    groups: tuple[str, ...] = ()
    #: POSIX time in seconds at which the credential stops being valid; the
    #: broker ends the connection then.  ``None`` for credentials that do not
    #: expire, such as passwords.
    expires_at: float | None = None
    #: The claims or attributes the identity came from, for authorizers that
    #: want more than the fields above.  Never contains the credential itself.
    attributes: Mapping[str, Any] = field(default_factory=dict)
    #: True for a client that sent no User Name and was let in without one
    #: (the ``anonymous`` authenticator).  The ACL gives such an identity no
    #: user name and applies Mosquitto's anonymous-only rules to it.  It is a
    #: field, not an attribute, because attributes may hold token claims.
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What a client presented in a CONNECT, an AUTH round or a re-authentication."""

    client_id: str
    protocol_level: int
    #: Peer address as ``host:port``, for logs.
    peer: str
    username: str | None = None
    password: bytes | None = None
    #: MQTT 5.0 Authentication Method, or ``None`` when the client named none.
    method: str | None = None
    #: MQTT 5.0 Authentication Data of this packet.
    data: bytes | None = None
    #: The identity in force, when this request is a re-authentication.
    current: Identity | None = None
    #: The ``state`` of the :class:`AuthContinue` this request answers.
    state: Any = None
    #: The TLS peer certificate (``OpenSSL.crypto.X509``) when one was verified.
    peer_certificate: Any = None


@dataclass(frozen=True, slots=True)
class AuthSuccess:
    """The client is authenticated as ``identity``."""

    identity: Identity
    #: Authentication Data for the CONNACK or final AUTH, if the method has any.
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class AuthContinue:
    """Another round is needed: the broker sends AUTH 0x18 with ``data``.

    The client's next AUTH arrives as a new :class:`AuthRequest` whose
    ``state`` is this object's ``state``.
    """

    data: bytes | None = None
    state: Any = None


class AuthenticationError(Exception):
    """An authentication decision of "no", with what to tell the client.

    ``reason_code`` is the MQTT 5.0 CONNACK or DISCONNECT reason code; the broker
    maps it to a 3.1.1 return code where it needs one.  ``reason_string`` goes to
    the client as the Reason String when the client accepts problem
    information, and ``reason`` is a short machine code (``expired_token``) for
    logs and metrics.  ``key_id`` names the key involved, for logs.  None of
    them may contain the credential.
    """

    def __init__(
        self,
        reason_code: ReasonCode,
        reason_string: str,
        reason: str,
        *,
        key_id: str | None = None,
    ) -> None:
        super().__init__(reason_string)
        self.reason_code = reason_code
        self.reason_string = reason_string
        self.reason = reason
        self.key_id = key_id


class IAuthenticator(Interface):
    """Decides whether a client may connect, and who it is."""

    methods = Attribute(
        "Tuple of the MQTT 5.0 Authentication Method names this authenticator "
        "accepts.  A CONNECT with any other method gets CONNACK 0x8C Bad "
        "authentication method before authenticate is called.  Empty when the "
        "authenticator only takes User Name and Password."
    )

    def authenticate(request: AuthRequest) -> Any:
        """Decide a CONNECT, an AUTH 0x18 round or a re-authentication.

        Returns an :class:`AuthSuccess` or :class:`AuthContinue`, or a Deferred
        that fires with one.  Raises (or the Deferred fails with)
        :class:`AuthenticationError` to reject the client.  Any other exception
        is treated as 0x80 Unspecified error and logged by the broker.

        For a re-authentication ``request.current`` is the identity in force;
        the broker itself rejects a success whose principal differs from it.
        """


class IAuthorizer(Interface):
    """Decides what an authenticated identity may publish and subscribe to.

    Each method returns ``True`` (allow), ``False`` (deny) or ``None`` (no
    decision: the next authorizer in the chain is asked, and when none
    decides the answer is deny), or a Deferred that fires with one of them.
    """

    def authorize_publish(
        identity: Identity, topic: str, qos: int, retain: bool
    ) -> Any:
        """Decide a PUBLISH to ``topic`` (a topic name, never a filter).

        The broker also calls this for a will, with the identity that was
        connected, when the will is about to be published.
        """

    def authorize_subscribe(identity: Identity, topic_filter: str, qos: int) -> Any:
        """Decide a subscription to ``topic_filter``.

        Allow only when every topic the filter can match may be read.  The
        broker also calls this with a topic name as the filter before it hands
        a retained message to a subscriber.  The ``$share/{ShareName}/``
        prefix is removed before the call.
        """


@dataclass(frozen=True, slots=True)
class PluginOption:
    """A setting a plugin takes, offered on the command line, in the
    environment and in the TOML file.

    ``name`` is the long option (``jwt-jwks-url`` gives ``--jwt-jwks-url``),
    ``env`` the environment variable (``JWT_JWKS_URL``) and the TOML key is
    ``name`` itself.  The command line wins over the environment, which wins
    over the file.  ``coerce`` turns the text (or the TOML value) into the
    value the plugin gets, raising ``ValueError`` with a message that says
    what was expected.  ``default`` is used when no source sets the option,
    and passes through ``coerce`` too unless it is ``None``.
    """

    name: str
    env: str
    help: str
    default: Any = None
    coerce: Callable[[Any], Any] = str


class IAuthenticatorPlugin(Interface):
    """A factory for an authenticator, found with getPlugins and chosen by name."""

    name = Attribute("The name given to --authenticator, such as 'password-file'.")
    description = Attribute("One line for the plugin listing.")
    options = Attribute("Sequence of PluginOption this plugin reads from settings.")

    def build(settings: Mapping[str, Any], reactor: Any) -> IAuthenticator:
        """Return a configured authenticator.

        ``settings`` is the merged configuration (command line over
        environment over file) of the service and of every plugin option,
        keyed by option name with dashes replaced by underscores
        (``jwt_jwks_url``), after ``coerce``.  ``settings["data_dir"]`` is the
        data directory or ``None``.  Raises :class:`mqttauth.service.config.ConfigError`
        naming the setting when it is missing or invalid.  An authenticator
        that also provides ``twisted.application.service.IService`` is started
        and stopped with the broker.
        """


class IAuthorizerPlugin(Interface):
    """A factory for an authorizer, found with getPlugins and chosen by name."""

    name = Attribute("The name given to --authorizer, such as 'acl-file'.")
    description = Attribute("One line for the plugin listing.")
    options = Attribute("Sequence of PluginOption this plugin reads from settings.")

    def build(settings: Mapping[str, Any], reactor: Any) -> IAuthorizer:
        """Return a configured authorizer; see :meth:`IAuthenticatorPlugin.build`.

        An authorizer with a ``reload()`` method has it called on SIGHUP.
        """
