"""Start and stop the brokers under test, each pinned to one CPU core.

Every broker gets a fresh working folder and a free loopback port, and is
ended by its own pid.  The CPU time and resident memory of a running broker
are read from ``/proc/PID``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MOSQUITTO_CONF = Path(__file__).resolve().parent / "mosquitto.conf"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BrokerError(Exception):
    """A broker did not start, or exited while it was needed."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """Return user plus system CPU seconds of `pid` (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss_kib(pid: int) -> int:
    """Return VmRSS of `pid` in KiB, or -1 if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


@dataclass
class Broker:
    """One running broker process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return process_rss_kib(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> int:
        """End the broker with SIGTERM (SIGKILL after `timeout` s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def wait_for_port(broker: Broker, timeout: float) -> None:
    """Poll until the broker accepts TCP connections on its port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            raise BrokerError(
                f"{broker.name} exited with status {broker.process.returncode} "
                f"before listening on port {broker.port}:\n{broker.log_tail()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", broker.port), 0.5):
                return
        except OSError:
            time.sleep(0.05)
    broker.stop()
    raise BrokerError(
        f"{broker.name} did not listen on port {broker.port} within "
        f"{timeout:.0f} s:\n{broker.log_tail()}"
    )


def _launch(
    name: str,
    command: Sequence[str],
    port: int,
    workdir: Path,
    env: Mapping[str, str] | None,
    timeout: float,
) -> Broker:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(command),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
        )
    broker = Broker(name, port, process, workdir, log_path, list(command))
    wait_for_port(broker, timeout)
    return broker


def start_mosquitto(workdir: Path, cpu: int, timeout: float = 10.0) -> Broker:
    """Start Debian's mosquitto with bench/mosquitto.conf on a free port."""
    port = free_port()
    lines = []
    for line in MOSQUITTO_CONF.read_text().splitlines():
        if line.startswith("listener "):
            parts = line.split()
            parts[1] = str(port)
            line = " ".join(parts)
        lines.append(line)
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    command = ["taskset", "-c", str(cpu), "mosquitto", "-c", str(conf)]
    return _launch("mosquitto", command, port, workdir, None, timeout)


def start_mqttauth(
    workdir: Path,
    cpu: int,
    authenticator: str = "anonymous",
    data_dir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> Broker:
    """Start mqttauth from this working tree with ``twistd -n mqttauth``.

    twistd runs in this interpreter (``python -c``, as the twistd script
    does), so the broker uses the same Python and packages as the runner.

    The repository comes first on PYTHONPATH, so the code measured is the
    code in the tree, and its ``twisted/plugins`` folder provides the plugin.
    """
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.update(extra_env or {})
    command = [
        "taskset",
        "-c",
        str(cpu),
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "--pidfile=",
        "-n",
        "mqttauth",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
        "--authenticator",
        authenticator,
    ]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    command += list(extra_args)
    return _launch("mqttauth", command, port, workdir, env, timeout)
