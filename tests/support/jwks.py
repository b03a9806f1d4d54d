"""A JWKS server on loopback for tests, over real HTTP (twisted.web), and
helpers that sign tokens with any header, even ones no library would write.

The server runs on the test's reactor (unlike the threaded one in
:mod:`tests.support.oidc`), so a test can hold requests and release them in
the same reactor turn, and count them exactly.

    server = JWKSServer(reactor)      # listens on 127.0.0.1, a free port
    server.set_keys([public_jwk])     # the document served at server.url
    server.requests                   # GET requests answered or held so far
    server.hold()                     # later requests wait ...
    server.release()                  # ... until this answers them all
    yield server.stop()

:func:`sign_token` builds a compact JWS from a header and claims exactly as
given and signs it with a joserfc key (no signature for ``alg: none``), so
tests can produce tokens with ``crit``, string dates or duplicate members.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from joserfc import jwk
from joserfc.jws import JWSRegistry
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_token(
    header: dict[str, Any],
    claims: dict[str, Any] | str,
    key: jwk.Key | None,
) -> str:
    """Return ``header.claims.signature`` with ``header`` and ``claims`` as given.

    ``claims`` may be JSON text, to write what ``json.dumps`` cannot.  The
    signature uses ``header["alg"]``; for ``none`` or a ``None`` key it is empty.
    """
    header_part = b64url(json.dumps(header, separators=(",", ":")).encode())
    text = (
        claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
    )
    signing_input = f"{header_part}.{b64url(text.encode())}"
    algorithm = header.get("alg")
    if key is None or algorithm == "none":
        return signing_input + "."
    signature = JWSRegistry.algorithms[algorithm].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


def sign_hs256_with_bytes(
    header: dict[str, Any], claims: dict[str, Any], secret: bytes
) -> str:
    """Sign with HMAC-SHA256 keyed by arbitrary ``secret`` bytes (a PEM, say),
    which joserfc itself refuses to use as an HMAC key."""
    header_part = b64url(json.dumps(header).encode())
    signing_input = f"{header_part}.{b64url(json.dumps(claims).encode())}"
    digest = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(digest)}"


def public_jwk(key: jwk.Key, kid: str, **members: Any) -> dict[str, Any]:
    """Return the public JWK of ``key`` with ``kid`` and any extra members."""
    document = dict(key.as_dict(private=False))
    document["kid"] = kid
    document.update(members)
    return document


class _JWKSResource(Resource):
    isLeaf = True  # noqa: N815 (twisted.web name)

    def __init__(self) -> None:
        super().__init__()
        self.body = b'{"keys": []}'
        self.status = 200
        self.cache_control: str | None = None
        self.requests = 0
        self.holding = False
        self.held: list[Request] = []

    def render_GET(self, request: Request) -> Any:  # noqa: N802 (twisted.web name)
        self.requests += 1
        if self.holding:
            self.held.append(request)
            request.notifyFinish().addErrback(lambda _: None)
            return NOT_DONE_YET
        return self._answer(request)

    def _answer(self, request: Request) -> bytes:
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", b"application/json")
        if self.cache_control is not None:
            request.setHeader(b"cache-control", self.cache_control.encode())
        return self.body

    def release(self) -> None:
        held, self.held = self.held, []
        self.holding = False
        for request in held:
            if not request.finished and not request._disconnected:
                request.write(self._answer(request))
                request.finish()


class JWKSServer:
    """Serves a JWKS document at ``url`` on 127.0.0.1; see the module docstring."""

    def __init__(self, reactor: Any, path: str = "/keys") -> None:
        self.reactor = reactor
        self.resource = _JWKSResource()
        root = Resource()
        root.putChild(path.strip("/").encode(), self.resource)
        self.site = Site(root)
        self.port: Any = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.port_number = self.port.getHost().port
        self.url = f"http://127.0.0.1:{self.port_number}{path}"

    def go_down(self) -> Deferred[None]:
        """Stop listening, so that requests are refused, keeping the port number."""
        port, self.port = self.port, None
        return port.stopListening()

    def come_up(self) -> None:
        """Listen again on the same port after :meth:`go_down`."""
        self.port = self.reactor.listenTCP(
            self.port_number, self.site, interface="127.0.0.1"
        )

    @property
    def requests(self) -> int:
        return self.resource.requests

    def set_keys(self, keys: Sequence[dict[str, Any]]) -> None:
        self.resource.body = json.dumps({"keys": list(keys)}).encode()

    def set_body(self, body: bytes, status: int = 200) -> None:
        self.resource.body = body
        self.resource.status = status

    def set_cache_control(self, value: str | None) -> None:
        self.resource.cache_control = value

    def hold(self) -> None:
        self.resource.holding = True

    def release(self) -> None:
        self.resource.release()

    def stop(self) -> Deferred[None] | None:
        self.resource.release()
        if self.port is None:
            return None
        port, self.port = self.port, None
        return port.stopListening()
