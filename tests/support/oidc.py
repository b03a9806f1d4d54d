"""Identity providers for end-to-end tests: oidc-provider and a plain JWKS server.

:func:`start_oidc_provider` runs ``tests/js/oidc_server.mjs`` (npm
``oidc-provider`` 8) on a free loopback port and returns an
:class:`OIDCProvider` that fetches tokens with the client-credentials grant,
reads the discovery document, rotates the signing key and counts JWKS
requests.  :class:`JWKSServer` serves a JWKS document that the test sets, on
a loopback port, from a thread of the test process, and counts its GETs.
Both are context managers that stop their server on exit.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

JS_DIR = Path(__file__).resolve().parents[1] / "js"
OIDC_SERVER = JS_DIR / "oidc_server.mjs"

#: Audience (RFC 8707 resource indicator) of the provider's access tokens.
DEFAULT_RESOURCE = "urn:mqttauth:broker"


def http_json(
    url: str, data: bytes | None = None, headers: Mapping[str, str] = {}
) -> Any:
    """Return the JSON body of a GET (or POST, when ``data`` is given) to ``url``."""
    request = urllib.request.Request(url, data=data, headers=dict(headers))
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())


def unverified_header(token: str) -> dict[str, Any]:
    """Return the JOSE header of a compact JWS without checking its signature."""
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class OIDCProvider:
    """A running ``oidc_server.mjs``; see the module docstring."""

    def __init__(self, config: Mapping[str, Any], timeout: float = 30.0) -> None:
        self.config = dict(config)
        self.process = subprocess.Popen(
            ["node", str(OIDC_SERVER), json.dumps(self.config)],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = self._read_ready_line(timeout)
        self.issuer: str = ready["issuer"]
        self.admin: str = ready["admin"]
        self.kid: str = ready["kid"]

    def _read_ready_line(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(timeout)
        if not lines or not lines[0].strip():
            self.stop()
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(
                f"oidc_server.mjs did not start within {timeout} s:\n{stderr}"
            )
        return json.loads(lines[0])

    def discovery(self) -> dict[str, Any]:
        """Return the provider metadata (``/.well-known/openid-configuration``)."""
        return http_json(self.issuer + "/.well-known/openid-configuration")

    def token(self, client_id: str, client_secret: str, **parameters: str) -> str:
        """Return an access token from the token endpoint (client-credentials grant).

        The client authenticates with HTTP Basic (``client_secret_basic``).
        """
        endpoint = self.discovery()["token_endpoint"]
        credentials = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        body = urllib.parse.urlencode(
            {"grant_type": "client_credentials", **parameters}
        )
        answer = http_json(
            endpoint,
            data=body.encode(),
            headers={
                "Authorization": f"Basic {credentials}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        return str(answer["access_token"])

    def rotate(self, retire: bool = False) -> str:
        """Make a new signing key current and return its ``kid``.

        The old keys stay in the JWKS unless ``retire`` is true.
        """
        url = self.admin + "/rotate" + ("?retire=1" if retire else "")
        answer = http_json(url, data=b"")
        self.kid = answer["kid"]
        return self.kid

    def jwks_requests(self) -> int:
        """Return how many GET requests the JWKS endpoint has served."""
        return int(http_json(self.admin + "/stats")["jwks_requests"])

    def stop(self) -> None:
        """Stop the provider: closing its standard input makes it exit."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> OIDCProvider:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_oidc_provider(
    clients: Sequence[Mapping[str, Any]],
    *,
    resource: str = DEFAULT_RESOURCE,
    access_token_ttl: int = 300,
) -> OIDCProvider:
    """Start ``oidc_server.mjs`` with ``clients`` and return it once it listens.

    Each client is ``{"client_id", "client_secret", "claims"}``; its
    ``claims`` are added to every access token issued to it.
    """
    return OIDCProvider(
        {
            "clients": list(clients),
            "resource": resource,
            "accessTokenTTL": access_token_ttl,
        }
    )


class JWKSServer:
    """Serves a JWKS document at ``/keys`` on 127.0.0.1; see the module docstring."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document: Mapping[str, Any] = document
        self.requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server name)
                if self.path != "/keys":
                    self.send_error(404)
                    return
                with server._lock:
                    server.requests += 1
                    body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/keys"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def set_document(self, document: Mapping[str, Any]) -> None:
        """Serve ``document`` from now on."""
        with self._lock:
            self.document = document

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> JWKSServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
