"""Interoperability with Debian's mosquitto_pub and mosquitto_sub."""

from __future__ import annotations

import shutil

import pytest
import pytest_twisted

from tests.support.inprocess import in_thread
from tests.support.mosquitto_clients import MosquittoSub, mosquitto_pub

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_sub") is None, reason="mosquitto-clients is not installed"
)

VERSIONS = ["mqttv311", "mqttv5"]


def address(port: int, version: str) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(port), "-V", version]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", ["0", "1", "2"])
@pytest_twisted.inlineCallbacks
def test_pub_reaches_sub(broker, version, qos):
    def scenario() -> None:
        with MosquittoSub(
            [*address(broker.port, version), "-t", "m/#", "-q", qos, "-v"]
        ) as sub:
            assert sub.wait_subscribed() == [int(qos)]
            result = mosquitto_pub(
                [*address(broker.port, version), "-t", "m/a", "-m", "hi", "-q", qos]
            )
            assert result.returncode == 0
            assert sub.wait_message() == "m/a hi"

    yield in_thread(scenario)


@pytest.mark.parametrize("version", VERSIONS)
@pytest_twisted.inlineCallbacks
def test_retained_reaches_late_sub(broker, version):
    def scenario() -> None:
        result = mosquitto_pub(
            [*address(broker.port, version), "-t", "r/a", "-m", "kept", "-r", "-q", "1"]
        )
        assert result.returncode == 0
        with MosquittoSub(
            [*address(broker.port, version), "-t", "r/#", "-v", "-C", "1"]
        ) as sub:
            assert sub.wait_message() == "r/a kept"
            assert sub.wait_exit() == 0

    yield in_thread(scenario)


@pytest.mark.parametrize("version", VERSIONS)
@pytest_twisted.inlineCallbacks
def test_will_on_killed_client(broker, version):
    def scenario() -> None:
        with MosquittoSub(
            [*address(broker.port, version), "-t", "w/#", "-v"]
        ) as watcher:
            watcher.wait_subscribed()
            device = MosquittoSub(
                [
                    *address(broker.port, version),
                    "-t",
                    "ignored",
                    "--will-topic",
                    "w/device",
                    "--will-payload",
                    "gone",
                ]
            )
            device.wait_subscribed()
            device.process.kill()
            device.stop()
            assert watcher.wait_message() == "w/device gone"

    yield in_thread(scenario)


@pytest.mark.parametrize("version", VERSIONS)
@pytest_twisted.inlineCallbacks
def test_persistent_sub_gets_queued(broker, version):
    session = ["-i", "keeper", "-c", "-q", "1"]
    if version == "mqttv5":
        session += ["-x", "300"]

    def scenario() -> None:
        with MosquittoSub(
            [*address(broker.port, version), "-t", "q/#", *session]
        ) as first:
            first.wait_subscribed()
        for number in range(3):
            result = mosquitto_pub(
                [
                    *address(broker.port, version),
                    "-t",
                    f"q/{number}",
                    "-m",
                    str(number),
                    "-q",
                    "1",
                ]
            )
            assert result.returncode == 0
        with MosquittoSub(
            [*address(broker.port, version), "-t", "q/#", *session, "-v", "-C", "3"]
        ) as again:
            received = [again.wait_message() for _ in range(3)]
            assert received == ["q/0 0", "q/1 1", "q/2 2"]

    yield in_thread(scenario)
