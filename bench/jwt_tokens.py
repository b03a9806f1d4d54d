"""Signing keys, tokens and a JWKS server for the JWT benchmark scenarios.

Run as a script, it measures how fast one process verifies tokens with
joserfc alone (signature check by ``jwt.decode``, then the claims check of
``JWTClaimsRegistry.validate``), the reference figure that the broker's JWT
connect rate is compared with.  It prints one JSON line, like mqttload.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry

#: The key id and key type behind each algorithm the benchmark signs with.
ALGORITHMS: dict[str, str] = {"RS256": "bench-rs256", "ES256": "bench-es256"}
SUBJECT = "bench-device"
AUDIENCE = "mqttauth-bench"


def make_keys() -> dict[str, RSAKey | ECKey]:
    """Generate one RSA-2048 and one P-256 private key, by algorithm."""
    return {
        "RS256": RSAKey.generate_key(
            2048, {"kid": ALGORITHMS["RS256"], "alg": "RS256", "use": "sig"}
        ),
        "ES256": ECKey.generate_key(
            "P-256", {"kid": ALGORITHMS["ES256"], "alg": "ES256", "use": "sig"}
        ),
    }


def jwks_document(keys: dict[str, RSAKey | ECKey]) -> dict[str, Any]:
    """Return the public JWKS that verifies tokens signed with `keys`."""
    return {"keys": [key.as_dict(private=False) for key in keys.values()]}


def sign_tokens(
    key: RSAKey | ECKey, algorithm: str, count: int, issuer: str, ttl: int = 7200
) -> list[str]:
    """Sign `count` distinct tokens for one subject; each has its own `jti`.

    All tokens name the same principal, so any of them may replace another in
    an MQTT 5 re-authentication.
    """
    now = int(time.time())
    header = {"alg": algorithm, "kid": key.kid, "typ": "JWT"}
    tokens = []
    for _ in range(count):
        claims = {
            "iss": issuer,
            "sub": SUBJECT,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now - 5,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        tokens.append(jwt.encode(header, claims, key, algorithms=[algorithm]))
    return tokens


class _JWKSHandler(BaseHTTPRequestHandler):
    server: JWKSServer

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.server.requests += 1
        if self.path != "/jwks.json":
            self.send_error(404)
            return
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class JWKSServer(ThreadingHTTPServer):
    """Serve one JWKS document at ``/jwks.json`` on a free loopback port."""

    daemon_threads = True

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _JWKSHandler)
        self.body = json.dumps(document).encode()
        self.requests = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/jwks.json"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def verify_rate(
    tokens: Sequence[str],
    key_set: KeySet,
    algorithm: str,
    issuer: str,
    seconds: float,
) -> tuple[int, float]:
    """Verify tokens in turn for about `seconds`; return (count, elapsed).

    Each verification is what a broker must do per CONNECT: parse and check
    the signature with the key the `kid` names, then check `iss`, `aud`,
    `sub`, `exp`, `nbf` and `iat` against the current time.
    """
    registry = JWTClaimsRegistry(
        now=lambda: int(time.time()),
        leeway=30,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True},
        exp={"essential": True},
    )
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for token in tokens:
            decoded = jwt.decode(token, key_set, algorithms=[algorithm])
            registry.validate(decoded.claims)
            count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count, now - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jwks", type=Path, required=True, help="JWKS file")
    parser.add_argument("--tokens", type=Path, required=True, help="token file")
    parser.add_argument("--algorithm", required=True, choices=sorted(ALGORITHMS))
    parser.add_argument("--issuer", required=True, help="expected iss")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds")
    args = parser.parse_args(argv)

    key_set = KeySet.import_key_set(json.loads(args.jwks.read_text()))
    tokens = args.tokens.read_text().split()
    verify_rate(tokens[:50], key_set, args.algorithm, args.issuer, 0.2)
    cpu_start = time.process_time()
    distinct, distinct_s = verify_rate(
        tokens, key_set, args.algorithm, args.issuer, args.duration
    )
    cpu = time.process_time() - cpu_start
    same, same_s = verify_rate(
        tokens[:1], key_set, args.algorithm, args.issuer, args.duration / 2
    )
    result = {
        "scenario": "joserfc_verify",
        "algorithm": args.algorithm,
        "tokens": len(tokens),
        "verified": distinct,
        "verifications_per_s": distinct / distinct_s,
        # Per CPU second of this process: what one core would do undisturbed.
        "verifications_per_cpu_s": distinct / cpu if cpu else 0.0,
        "same_token_per_s": same / same_s,
        "ok": True,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
