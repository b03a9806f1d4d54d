"""Development mode: ``twistd -n mqttauth --dev`` starts a complete broker alone.

Development mode keeps an EC P-256 signing key in the data directory, creating
it on the first start and never replacing it.  It serves the public half as a
JWKS document over HTTP on 127.0.0.1 and points the ``jwt`` authenticator at
that document.  It writes a permissive development ACL and produces
``mosquitto_sub`` and ``mosquitto_pub`` command lines that carry a freshly
signed token.  Anyone who can read the data directory can sign tokens that
the broker accepts, so the listeners must be on loopback and the banner says
so loudly.  Only the ``--dev`` option turns this on.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mqttauth.service.config import ConfigError
from mqttauth.tokens import (
    DEV_AUDIENCE,
    DEV_GROUPS_CLAIM,
    DEV_ISSUER,
    DEV_ORGANIZATION_CLAIM,
    KeyFileError,
    SigningKey,
    create_dev_key,
    default_dev_data_dir,
    dev_key_path,
    load_dev_key,
    sign_dev_token,
)

log = Logger()

#: The listener when ``--listen`` is not given.
DEV_LISTEN = "tcp:1883:interface=127.0.0.1"
#: The service's own default listener, which development mode replaces.
SERVICE_DEFAULT_LISTEN = ("tcp:1883",)
#: Path of the JWKS document on the development HTTP server.
JWKS_PATH = "/.well-known/jwks.json"
#: Path of the OpenID provider metadata that names ``jwks_uri``.
DISCOVERY_PATH = "/.well-known/openid-configuration"
#: Key-source settings of the ``jwt`` authenticator that development mode unsets.
DISPLACED_KEY_SETTINGS = (
    "jwt_verification_key",
    "jwt_verification_key_base64",
    "jwt_verification_key_path",
    "jwt_entra_id_tenant_id",
)
#: File name of the development ACL inside the data directory.
DEV_ACL_FILENAME = "dev-acl.conf"
#: Principal, groups and lifetime of the token printed in the banner.
BANNER_SUBJECT = "dev-user"
BANNER_GROUPS = ("dev",)
BANNER_TTL = 24 * 3600
#: Topic the printed command lines use; the development ACL allows it to all.
BANNER_TOPIC = "dev/hello"

DEV_ACL = f"""\
# Development ACL of 'twistd mqttauth --dev' (Mosquitto acl_file syntax).
# Created on the first start and never overwritten: edit it and send the
# broker SIGHUP to reload it.  Placeholders come from the token's claims:
# {{username}} is 'sub', {{group}} each entry of '{DEV_GROUPS_CLAIM}', and
# {{organization}} is '{DEV_ORGANIZATION_CLAIM}'.

# Every authenticated client may use the shared playground.
pattern readwrite dev/#

# Each principal owns its own subtree, each group and organization its own.
pattern readwrite devices/{{username}}/#
pattern readwrite groups/{{group}}/#
pattern readwrite t/{{organization}}/{{username}}/#
"""


@dataclass(frozen=True, slots=True)
class LoopbackEndpoint:
    """The host and port an MQTT client dials to reach a ``tcp:`` listener."""

    host: str
    port: int


def parse_loopback_listener(description: str) -> LoopbackEndpoint:
    """Return where a client reaches the listener ``description``.

    Accepts ``tcp:PORT[:interface=ADDRESS]`` and ``tcp:port=PORT:...`` whose
    interface is a loopback address.  Raises :class:`ConfigError` for any
    other endpoint, because a development broker must not be reachable
    from other machines (an absent interface means every interface), and
    for port 0, which the printed command lines could not name.
    """
    parts = _split_endpoint(description)
    kind, positional, keywords = parts[0], [], {}
    for part in parts[1:]:
        name, separator, value = part.partition("=")
        if separator:
            keywords[name] = value
        else:
            positional.append(part)
    port_text = keywords.get("port", positional[0] if positional else "")
    # Positional arguments of a tcp: server endpoint: port, interface, backlog.
    interface = keywords.get("interface", positional[1] if len(positional) > 1 else "")
    if kind != "tcp" or not port_text.isdigit():
        raise ConfigError(
            "--listen",
            f"development mode takes tcp:PORT:interface=127.0.0.1 listeners, "
            f"got {description!r}",
        )
    if not _is_loopback(interface):
        raise ConfigError(
            "--listen",
            f"development mode listens on loopback only, got {description!r}; "
            f"add :interface=127.0.0.1 (or ::1), or configure a real deployment "
            f"without --dev",
        )
    port = int(port_text)
    if port == 0:
        raise ConfigError(
            "--listen",
            f"development mode prints client command lines that name the port, "
            f"so it needs a fixed port, got {description!r}",
        )
    return LoopbackEndpoint(interface, port)


def _split_endpoint(description: str) -> list[str]:
    """Split an endpoint description at colons that no backslash escapes."""
    parts, current, escaped = [], [], False
    for character in description:
        if escaped:
            current.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    return parts


def _is_loopback(interface: str) -> bool:
    try:
        return ip_address(interface).is_loopback
    except ValueError:
        return False


class JSONResource(Resource):
    """A fixed JSON document served with ``Cache-Control`` for GET and HEAD."""

    isLeaf = True  # noqa: N815 (twisted.web name)

    def __init__(self, document: Mapping[str, Any], max_age: int = 300) -> None:
        super().__init__()
        self._body = json.dumps(document, indent=2).encode() + b"\n"
        self._max_age = max_age

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 (twisted.web name)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", f"max-age={self._max_age}".encode())
        return self._body

    render_HEAD = render_GET  # noqa: N815 (twisted.web name)


def build_well_known(signing_key: SigningKey, base_url: str) -> Resource:
    """Return the ``/.well-known/`` resource: the key's JWKS and an OpenID
    discovery document whose ``jwks_uri`` starts with ``base_url``.
    """
    jwks = JSONResource({"keys": [signing_key.public_jwk()]})
    discovery = JSONResource(
        {
            "issuer": DEV_ISSUER,
            "jwks_uri": base_url + JWKS_PATH,
            "id_token_signing_alg_values_supported": [signing_key.algorithm],
        }
    )
    well_known = Resource()
    well_known.putChild(b"jwks.json", jwks)
    well_known.putChild(b"openid-configuration", discovery)
    return well_known


class JWKSServerService(Service):
    """Serves the development JWKS on a loopback port bound at construction.

    The port is bound before the service starts, because the ``jwt``
    authenticator is configured with its URL while the service tree is
    being built.  ``stopService`` closes it.
    """

    def __init__(self, reactor: Any, signing_key: SigningKey) -> None:
        super().__init__()
        self.name = "dev-jwks"
        root = Resource()
        site = Site(root)
        site.noisy = False
        self._port: Any = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.base_url = f"http://127.0.0.1:{self._port.getHost().port}"
        self.jwks_url = self.base_url + JWKS_PATH
        root.putChild(b".well-known", build_well_known(signing_key, self.base_url))

    def startService(self) -> None:
        super().startService()
        log.info("Development JWKS served at {jwks_url}", jwks_url=self.jwks_url)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return maybeDeferred(self._port.stopListening)


def write_dev_acl(data_dir: Path) -> Path:
    """Write the development ACL into ``data_dir`` unless a file is there already."""
    path = data_dir / DEV_ACL_FILENAME
    try:
        with path.open("x", encoding="utf-8") as stream:
            stream.write(DEV_ACL)
    except FileExistsError:
        pass
    return path


def format_client_commands(endpoint: LoopbackEndpoint, token: str) -> tuple[str, str]:
    """Return the ``mosquitto_sub`` and ``mosquitto_pub`` lines for ``endpoint``.

    Both use the legacy flow: User Name ``JWT`` and the token as Password.
    """
    common = [
        "-h",
        endpoint.host,
        "-p",
        str(endpoint.port),
        "-u",
        "JWT",
        "-P",
        token,
    ]
    subscribe = ["mosquitto_sub", *common, "-t", "dev/#", "-v"]
    publish = [
        "mosquitto_pub",
        *common,
        "-t",
        BANNER_TOPIC,
        "-m",
        "hello from mqttauth",
    ]
    return shlex.join(subscribe), shlex.join(publish)


def format_banner(
    *,
    endpoints: Sequence[LoopbackEndpoint],
    data_dir: Path,
    jwks_url: str,
    acl_file: Path,
    token: str,
    expires_at: float,
) -> str:
    """Return the text development mode writes to standard output.

    It contains a token, so it goes to standard output only, never to the log.
    """
    subscribe, publish = format_client_commands(endpoints[0], token)
    expiry = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    listeners = ", ".join(f"{e.host}:{e.port}" for e in endpoints)
    rule = "=" * 72
    return "\n".join(
        [
            rule,
            "  mqttauth DEVELOPMENT MODE (--dev) -- NOT FOR PRODUCTION",
            rule,
            f"  Anyone who can read {dev_key_path(data_dir)}",
            "  can sign tokens that this broker accepts.",
            "",
            f"  MQTT listeners:  {listeners}",
            f"  JWKS:            {jwks_url}",
            f"  Issuer:          {DEV_ISSUER}",
            f"  Audience:        {DEV_AUDIENCE}",
            f"  ACL:             {acl_file}",
            "",
            f"  A token for {BANNER_SUBJECT!r} (groups: {', '.join(BANNER_GROUPS)}),",
            f"  valid until {expiry}.  Subscribe:",
            "",
            subscribe,
            "",
            "  and publish, in another terminal:",
            "",
            publish,
            "",
            "  More tokens:",
            f"  python -m mqttauth token --data-dir {shlex.quote(str(data_dir))} "
            "--sub device-1 --groups sensors --ttl 3600",
            rule,
            "",
        ]
    )


def _warn_if_readable(path: Path) -> None:
    """Warn when users other than the owner may read the signing key."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        log.warn(
            "The development signing key {path} is readable by other users "
            "(mode {mode:04o}): anyone who reads it can sign tokens this broker "
            "accepts. Run chmod 600 on it.",
            path=str(path),
            mode=mode & 0o777,
        )


def _prepare_signing_key(data_dir: Path) -> SigningKey:
    """Create the development signing key in ``data_dir`` unless it exists,
    then load it.  Raises :class:`ConfigError` when either step fails."""
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(
            "--data-dir", f"{str(data_dir)!r} exists but is not a directory"
        )
    try:
        created = create_dev_key(data_dir)
    except OSError as error:
        raise ConfigError(
            "--data-dir",
            f"cannot create the development signing key in {str(data_dir)!r}: "
            f"{error.strerror or error}; give a directory this user can write",
        ) from None
    path = dev_key_path(data_dir)
    if created:
        log.info("Created development signing key {path}", path=str(path))
    else:
        _warn_if_readable(path)
    try:
        return load_dev_key(data_dir)
    except KeyFileError as error:
        raise ConfigError(
            "--dev",
            f"the development signing key cannot be used: {error}. Delete "
            f"{str(path)!r} and start again to have a new key created",
        ) from None


def prepare_dev_mode(
    settings: Mapping[str, Any], reactor: Any
) -> tuple[dict[str, Any], list[IService], str]:
    """Set up development mode and return what the service needs to run it.

    Called by the service's ``makeService`` when ``--dev`` is given, before
    the authenticator, authorizer and store are built.  ``settings`` is the
    merged configuration keyed like plugin settings (``listen``,
    ``data_dir``, ``acl_file``); ``reactor`` is used to bind the JWKS port at
    once.

    Returns ``(overrides, services, banner)``:

    - ``overrides``: settings to apply over ``settings`` before building
      anything, already in their coerced form (tuples for lists):
      ``listen`` (``tcp:1883:interface=127.0.0.1`` unless a listener was
      given), ``data_dir`` (``--data-dir``, else
      :func:`mqttauth.tokens.default_dev_data_dir`), ``authenticator``
      ``jwt`` with ``jwt_jwks_url``, ``jwt_expected_issuer``,
      ``jwt_audience``, ``jwt_groups_claim_name`` and
      ``jwt_organization_claim``, and ``authorizer`` ``acl-file`` with
      ``acl_file`` (the development ACL unless ``--acl-file`` was given).
      The other key-source settings of ``jwt`` are set to ``None``.
    - ``services``: the JWKS server, to add to the application; its port is
      already listening.
    - ``banner``: text for standard output with the ready-to-paste client
      command lines.  It contains a token: print it, never log it.

    Creates the data directory, the signing key and the ACL file when they
    are missing and never overwrites them.  Raises :class:`ConfigError` for
    a listener that is not a loopback ``tcp:`` endpoint, a data directory
    that cannot hold the key, and a key file that is not a usable key.
    """
    listen = tuple(settings.get("listen") or ())
    if not listen or listen == SERVICE_DEFAULT_LISTEN:
        listen = (DEV_LISTEN,)
    endpoints = [parse_loopback_listener(description) for description in listen]

    data_dir = Path(settings.get("data_dir") or default_dev_data_dir()).absolute()
    signing_key = _prepare_signing_key(data_dir)
    acl_file = Path(settings["acl_file"]) if settings.get("acl_file") else None
    if acl_file is None:
        acl_file = write_dev_acl(data_dir)

    jwks_service = JWKSServerService(reactor, signing_key)
    now = time.time()
    token = sign_dev_token(
        data_dir, BANNER_SUBJECT, ttl=BANNER_TTL, groups=BANNER_GROUPS, now=now
    )
    banner = format_banner(
        endpoints=endpoints,
        data_dir=data_dir,
        jwks_url=jwks_service.jwks_url,
        acl_file=acl_file,
        token=token,
        expires_at=int(now) + BANNER_TTL,
    )
    log.warn(
        "DEVELOPMENT MODE: not for production. Signing key {key_path}, JWKS "
        "{jwks_url}, issuer {issuer}, audience {audience}, ACL {acl_file}. "
        "Client command lines with a token are on standard output.",
        key_path=str(dev_key_path(data_dir)),
        jwks_url=jwks_service.jwks_url,
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        acl_file=str(acl_file),
    )
    overrides: dict[str, Any] = {
        "listen": listen,
        "data_dir": str(data_dir),
        "authenticator": "jwt",
        "jwt_jwks_url": jwks_service.jwks_url,
        "jwt_expected_issuer": DEV_ISSUER,
        "jwt_audience": (DEV_AUDIENCE,),
        "jwt_groups_claim_name": DEV_GROUPS_CLAIM,
        "jwt_organization_claim": DEV_ORGANIZATION_CLAIM,
        "authorizer": ("acl-file",),
        "acl_file": str(acl_file),
    }
    # The development JWKS is the only key source, so key settings from the
    # environment or a config file must not conflict with it.
    for key_setting in DISPLACED_KEY_SETTINGS:
        overrides[key_setting] = None
    return overrides, [jwks_service], banner
