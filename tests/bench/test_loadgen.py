"""The benchmark's load generator, run briefly against real brokers.

These runs check counts only: every message published arrives exactly once,
every connection gets its CONNACK.  Speed is judged by bench/run.py, never
here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
LOADGEN = BENCH / "loadgen" / "mqttload"


def load_bench_module(name: str) -> ModuleType:
    """Import bench/NAME.py, which is a script folder and not a package."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


brokers = load_bench_module("brokers")
jwt_tokens = load_bench_module("jwt_tokens")


@pytest.fixture(scope="module")
def loadgen() -> Path:
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("make and a C compiler are needed to build mqttload")
    subprocess.run(["make", "-s", "-C", str(LOADGEN.parent)], check=True)
    return LOADGEN


@pytest.fixture(params=["mqttauth", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "mosquitto":
        if shutil.which("mosquitto") is None:
            pytest.skip("Debian's mosquitto broker is not installed")
        started = brokers.start_mosquitto(tmp_path, cpu=0)
    else:
        started = brokers.start_mqttauth(tmp_path, cpu=0)
    yield started
    started.stop()


@pytest.fixture
def jwt_broker(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """Start mqttauth with the jwt authenticator and a JWKS on loopback."""
    keys = jwt_tokens.make_keys()
    server = jwt_tokens.JWKSServer(jwt_tokens.jwks_document(keys))
    server.start()
    issuer = server.url.rsplit("/", 1)[0]
    tokens = jwt_tokens.sign_tokens(keys["ES256"], "ES256", 60, issuer)
    path = tmp_path / "tokens.txt"
    path.write_text("\n".join(tokens) + "\n")
    env = {
        "JWT_JWKS_URL": server.url,
        "JWT_EXPECTED_ISSUER": issuer,
        "JWT_AUDIENCE": jwt_tokens.AUDIENCE,
    }
    started = brokers.start_mqttauth(
        tmp_path, cpu=0, authenticator="jwt", extra_env=env
    )
    yield started, path
    started.stop()
    server.stop()


def run(loadgen: Path, broker: Any, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(loadgen), *args, "--port", str(broker.port), "--timeout", "20"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stderr == ""
    return json.loads(done.stdout)


@pytest.mark.e2e
def test_fanin_qos1_exactly_once(loadgen: Path, broker: Any) -> None:
    result = run(
        loadgen,
        broker,
        "pubsub",
        "--qos",
        "1",
        "--publishers",
        "4",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--count",
        "4000",
    )
    assert result["ok"] is True
    assert result["sent"] > 0
    assert result["acked"] == result["sent"]
    assert result["distinct"] == result["sent"]
    assert result["lost"] == 0
    assert result["duplicates"] == 0


@pytest.mark.e2e
def test_fanout_qos0_counts(loadgen: Path, broker: Any) -> None:
    result = run(
        loadgen,
        broker,
        "pubsub",
        "--publishers",
        "1",
        "--subscribers",
        "5",
        "--topic",
        "bench/fanout",
        "--filter",
        "bench/fanout",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--count",
        "2000",
    )
    assert result["ok"] is True
    assert result["sent"] > 0
    assert result["distinct"] == 5 * result["sent"]
    assert result["lost"] == 0


@pytest.mark.e2e
def test_connect_all_acknowledged(loadgen: Path, broker: Any) -> None:
    result = run(
        loadgen,
        broker,
        "connect",
        "--count",
        "200",
        "--concurrency",
        "10",
        "--warmup-conns",
        "5",
    )
    assert result["succeeded"] == 200
    assert result["failed"] == 0


@pytest.mark.e2e
def test_latency_every_sample(loadgen: Path, broker: Any) -> None:
    result = run(
        loadgen,
        broker,
        "latency",
        "--rate",
        "200",
        "--duration",
        "1",
        "--warmup",
        "0",
    )
    assert result["received"] == result["sent"]
    assert result["samples"] == 200


@pytest.mark.e2e
def test_idle_connections_held(loadgen: Path, broker: Any) -> None:
    result = run(
        loadgen,
        broker,
        "idle",
        "--count",
        "100",
        "--warmup-conns",
        "10",
        "--settle",
        "0.1",
        "--broker-pid",
        str(broker.pid),
    )
    assert result["succeeded"] == 100
    assert result["still_open"] == 100
    assert result["rss_after_kib"] > 0


@pytest.mark.e2e
@pytest.mark.parametrize("auth", ["enhanced", "password"])
def test_jwt_connect_accepted(
    loadgen: Path, jwt_broker: tuple[Any, Path], auth: str
) -> None:
    broker, tokens = jwt_broker
    result = run(
        loadgen,
        broker,
        "connect",
        "--count",
        "40",
        "--concurrency",
        "5",
        "--warmup-conns",
        "5",
        "--auth",
        auth,
        "--tokens",
        str(tokens),
    )
    assert result["succeeded"] == 40
    assert result["failed"] == 0


@pytest.mark.e2e
def test_reauth_all_answered(loadgen: Path, jwt_broker: tuple[Any, Path]) -> None:
    broker, tokens = jwt_broker
    result = run(
        loadgen,
        broker,
        "reauth",
        "--connections",
        "5",
        "--count",
        "40",
        "--tokens",
        str(tokens),
    )
    assert result["succeeded"] == 40
    assert result["failed"] == 0
