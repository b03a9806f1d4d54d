"""Run the benchmark scenarios against mqttauth and Mosquitto, several rounds.

    python3 bench/run.py [--rounds 3] [--scenarios fanin_qos0,latency,...]

Each round runs every scenario on each broker in turn (the order of the
brokers alternates between rounds); every run gets a freshly started broker
pinned to one core and the C load generator pinned to the other.  Each run's
JSON, with how busy other processes kept each core meanwhile, goes to
bench/out/; the end prints medians, ratios mqttauth / Mosquitto, and the
targets.  ``--profile`` instead runs each scenario once on mqttauth under
py-spy and prints where the broker's time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import brokers
import jwt_tokens
import profiling
import report
from scenarios import BY_NAME, SCENARIOS, Scenario

BENCH = Path(__file__).resolve().parent
LOADGEN = BENCH / "loadgen" / "mqttload"
OUT = BENCH / "out"
#: The same in-flight and queue limits as bench/mosquitto.conf gives Mosquitto.
MQTTAUTH_LIMITS = ("--max-inflight", "1024", "--max-queued-messages", "100000")


def build_loadgen() -> None:
    subprocess.run(["make", "-s", "-C", str(LOADGEN.parent)], check=True)


def children_cpu_seconds() -> float:
    """Return the CPU seconds of all child processes reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def core_busy_seconds() -> dict[int, float]:
    """Return busy (non-idle) CPU seconds per core since boot."""
    busy = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        ticks = [int(v) for v in values]
        idle = ticks[3] + ticks[4]  # idle and iowait
        busy[int(name[3:])] = (sum(ticks[:8]) - idle) / brokers.CLOCK_TICKS
    return busy


class JWTSetup:
    """Keys, token files and the JWKS server the jwt scenarios share."""

    def __init__(self, folder: Path, token_count: int) -> None:
        self.keys = jwt_tokens.make_keys()
        document = jwt_tokens.jwks_document(self.keys)
        self.server = jwt_tokens.JWKSServer(document)
        self.server.start()
        self.issuer = self.server.url.rsplit("/", 1)[0]
        self.jwks_path = folder / "jwks.json"
        self.jwks_path.write_text(json.dumps(document))
        self.token_paths: dict[str, Path] = {}
        for algorithm, key in self.keys.items():
            tokens = jwt_tokens.sign_tokens(key, algorithm, token_count, self.issuer)
            path = folder / f"tokens-{algorithm}.txt"
            path.write_text("\n".join(tokens) + "\n")
            self.token_paths[algorithm] = path

    def broker_env(self) -> dict[str, str]:
        return {
            "JWT_JWKS_URL": self.server.url,
            "JWT_EXPECTED_ISSUER": self.issuer,
            "JWT_AUDIENCE": jwt_tokens.AUDIENCE,
        }

    def stop(self) -> None:
        self.server.stop()


class Runner:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.jwt: JWTSetup | None = None

    def start_broker(self, scenario: Scenario, name: str, workdir: Path) -> Any:
        cpu = self.args.broker_cpu
        if name == "mosquitto":
            return brokers.start_mosquitto(workdir, cpu)
        env = self.jwt.broker_env() if scenario.auth == "jwt" and self.jwt else {}
        data_dir = None
        if scenario.store == "durable":
            data_dir = workdir / "data"
            data_dir.mkdir()
        return brokers.start_mqttauth(
            workdir,
            cpu,
            authenticator="jwt" if scenario.auth == "jwt" else "anonymous",
            data_dir=data_dir,
            extra_env=env,
            extra_args=(*MQTTAUTH_LIMITS, *(self.args.mqttauth_arg or ())),
        )

    def loadgen_command(self, scenario: Scenario, broker: Any) -> list[str]:
        values = {"duration": str(self.args.duration), "pid": str(broker.pid)}
        if self.jwt:
            for algorithm, path in self.jwt.token_paths.items():
                values[f"tokens:{algorithm}"] = str(path)
        command = ["taskset", "-c", str(self.args.loadgen_cpu), str(LOADGEN)]
        for arg in scenario.loadgen:
            for key, value in values.items():
                arg = arg.replace("{" + key + "}", value)
            if self.args.count and command[-1] == "--count":
                arg = str(self.args.count)
            command.append(arg)
        command += ["--port", str(broker.port), "--prefix", "bench"]
        if "--broker-pid" not in command:
            command += ["--broker-pid", str(broker.pid)]
        return command

    def run_one(self, scenario: Scenario, name: str, round_no: int) -> dict[str, Any]:
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.folder))
        record: dict[str, Any] = {
            "round": round_no,
            "scenario": scenario.name,
            "broker": name,
        }
        try:
            broker = self.start_broker(scenario, name, workdir)
        except brokers.BrokerError as error:
            record["error"] = str(error)
            return record
        try:
            time.sleep(self.args.settle)
            record.update(self.measure(scenario, broker))
        finally:
            record["broker_exit"] = broker.stop()
            if self.args.keep_logs:
                shutil.copy(broker.log_path, OUT / f"{name}-{scenario.name}.log")
            shutil.rmtree(workdir, ignore_errors=True)
        return record

    def measure(self, scenario: Scenario, broker: Any) -> dict[str, Any]:
        command = self.loadgen_command(scenario, broker)
        busy_before = core_busy_seconds()
        broker_before = broker.cpu_seconds()
        runner_before = time.process_time()
        children_before = children_cpu_seconds()
        started = time.monotonic()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=scenario.timeout
            )
        except subprocess.TimeoutExpired:
            return {"error": f"mqttload timed out after {scenario.timeout} s"}
        wall = time.monotonic() - started
        broker_cpu = broker.cpu_seconds() - broker_before
        runner_cpu = time.process_time() - runner_before
        loadgen_cpu = children_cpu_seconds() - children_before
        busy_after = core_busy_seconds()

        record: dict[str, Any] = {
            "command": command,
            "wall_s": wall,
            "broker_cpu_s": broker_cpu,
            "broker_rss_kib": broker.rss_kib(),
        }
        lines = done.stdout.strip().splitlines()
        if lines:
            record["result"] = json.loads(lines[-1])
        if done.returncode or not lines:
            record["error"] = (done.stderr.strip() or "no output")[-2000:]
        # CPU that neither the broker, the generator nor this runner used, as a
        # share of the run's wall time: the other engineers' load on each core.
        own = {
            self.args.broker_cpu: broker_cpu,
            self.args.loadgen_cpu: loadgen_cpu + runner_cpu,
        }
        record["other_load"] = {
            str(core): max(0.0, busy_after[core] - busy_before[core] - own.get(core, 0))
            / wall
            for core in busy_after
        }
        record["broker_cpu_fraction"] = broker_cpu / wall
        return record

    def joserfc(self, algorithm: str, round_no: int) -> dict[str, Any]:
        """Measure joserfc alone on the broker's core, as the reference."""
        assert self.jwt is not None
        command = [
            "taskset",
            "-c",
            str(self.args.broker_cpu),
            sys.executable,
            str(BENCH / "jwt_tokens.py"),
            "--jwks",
            str(self.jwt.jwks_path),
            "--tokens",
            str(self.jwt.token_paths[algorithm]),
            "--algorithm",
            algorithm,
            "--issuer",
            self.jwt.issuer,
            "--duration",
            str(self.args.joserfc_duration),
        ]
        busy_before = core_busy_seconds()
        children_before = children_cpu_seconds()
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        wall = time.monotonic() - started
        own = {self.args.broker_cpu: children_cpu_seconds() - children_before}
        busy_after = core_busy_seconds()
        record: dict[str, Any] = {
            "round": round_no,
            "scenario": f"joserfc_{algorithm}",
            "broker": "joserfc",
            "wall_s": wall,
            "other_load": {
                str(core): max(
                    0.0, busy_after[core] - busy_before[core] - own.get(core, 0)
                )
                / wall
                for core in busy_after
            },
        }
        if done.returncode:
            record["error"] = done.stderr[-2000:]
        else:
            record["result"] = json.loads(done.stdout.strip().splitlines()[-1])
        return record

    def profile(self, scenario: Scenario) -> None:
        """Run scenario once on mqttauth under py-spy; print the ranking."""
        workdir = Path(tempfile.mkdtemp(prefix="profile-", dir=self.folder))
        broker = self.start_broker(scenario, "mqttauth", workdir)
        raw = OUT / f"profile-{scenario.name}.txt"
        try:
            time.sleep(self.args.settle)
            spy = profiling.start_py_spy(broker.pid, raw, self.args.loadgen_cpu)
            time.sleep(1.0)  # py-spy attaches before the load starts
            record = self.measure(scenario, broker)
            spy.send_signal(signal.SIGINT)
            _, errors = spy.communicate(timeout=60)
        finally:
            broker.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        figure = (record.get("result") or {}).get(scenario.metric)
        print(f"\n{scenario.name}: {scenario.metric} = {figure} (under py-spy)")
        if not raw.exists():
            print(f"py-spy wrote nothing: {errors.decode(errors='replace')}")
            return
        text = profiling.format_ranking(scenario.name, profiling.rank(raw))
        (OUT / f"profile-{scenario.name}.rank.txt").write_text(text + "\n")
        print(text)


def select_scenarios(text: str | None) -> list[Scenario]:
    if not text:
        return list(SCENARIOS)
    chosen = []
    for name in text.split(","):
        if name not in BY_NAME:
            raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(BY_NAME)}")
        chosen.append(BY_NAME[name])
    return chosen


def versions() -> dict[str, str]:
    import joserfc

    import twisted

    mosquitto = subprocess.run(
        ["mosquitto", "-h"], capture_output=True, text=True
    ).stdout.splitlines()[0]
    commit = subprocess.run(
        ["git", "-C", str(BENCH.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "joserfc": joserfc.__version__,
        "mosquitto": mosquitto,
        "mqttauth_commit": commit,
    }


def machine() -> dict[str, str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    memory = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "nproc": str(os.cpu_count()),
        "cpu_model": model,
        "memory": memory,
        "kernel": platform.release(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark mqttauth beside Mosquitto (see docs/benchmarks.md)."
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--scenarios", help="comma-separated names (default: all); --list shows them"
    )
    parser.add_argument("--list", action="store_true", help="list scenarios, exit")
    parser.add_argument(
        "--brokers", default="mqttauth,mosquitto", help="comma-separated brokers"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="seconds of measurement per throughput or latency run (default 5)",
    )
    parser.add_argument(
        "--count",
        type=int,
        help="replace the scenarios' --count (connections, re-authentications)",
    )
    parser.add_argument(
        "--joserfc-duration",
        type=float,
        default=3.0,
        help="seconds of joserfc-alone verification per algorithm (default 3)",
    )
    parser.add_argument("--broker-cpu", type=int, default=0, help="core for brokers")
    parser.add_argument(
        "--loadgen-cpu", type=int, default=1, help="core for the generator"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=0.5,
        help="seconds between a broker listening and the load starting",
    )
    parser.add_argument(
        "--mqttauth-arg",
        action="append",
        help="extra argument for twistd mqttauth (repeatable)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run each scenario once on mqttauth under py-spy instead",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="copy broker logs to bench/out/"
    )
    parser.add_argument("--output", type=Path, help="JSON file for all runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for scenario in SCENARIOS:
            print(
                f"{scenario.name:24} {'/'.join(scenario.brokers):19} "
                f"{scenario.description}"
            )
        return 0
    scenarios = select_scenarios(args.scenarios)
    broker_names = [b for b in args.brokers.split(",") if b]
    os.sched_setaffinity(0, {args.loadgen_cpu})
    build_loadgen()
    OUT.mkdir(exist_ok=True)
    output = args.output or OUT / time.strftime("run-%Y%m%d-%H%M%S.json")

    with tempfile.TemporaryDirectory(prefix="mqttauth-bench-") as tmp:
        runner = Runner(args, Path(tmp))
        if any(s.auth == "jwt" for s in scenarios):
            # Distinct tokens for every connection and re-authentication,
            # plus the warm-up connections.
            tokens = max(2000, args.count or 0) + 100
            runner.jwt = JWTSetup(Path(tmp), token_count=tokens)
        try:
            if args.profile:
                for scenario in scenarios:
                    if "mqttauth" in scenario.brokers:
                        runner.profile(scenario)
                return 0
            runs = run_rounds(runner, scenarios, broker_names, output)
        finally:
            if runner.jwt:
                runner.jwt.stop()
    print(report.render(runs, scenarios, machine(), versions()))
    print(f"\nall runs: {output}")
    return 0


def run_rounds(
    runner: Runner, scenarios: list[Scenario], broker_names: list[str], output: Path
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    info = {"machine": machine(), "versions": versions(), "argv": sys.argv}
    for round_no in range(runner.args.rounds):
        order = broker_names if round_no % 2 == 0 else broker_names[::-1]
        if runner.jwt:
            for algorithm in jwt_tokens.ALGORITHMS:
                runs.append(runner.joserfc(algorithm, round_no))
                progress(runs[-1])
        for scenario in scenarios:
            for name in order:
                if name in scenario.brokers:
                    runs.append(runner.run_one(scenario, name, round_no))
                    progress(runs[-1], scenario.metric)
        output.write_text(json.dumps({**info, "runs": runs}, indent=1) + "\n")
    return runs


def progress(run: Mapping[str, Any], metric: str = "verifications_per_s") -> None:
    result = run.get("result") or {}
    load = run.get("other_load", {})
    noise = " ".join(f"cpu{c}={v:.2f}" for c, v in sorted(load.items()))
    status = "ok" if result.get("ok") else f"FAILED {run.get('error', '')[:300]}"
    print(
        f"round {run['round']} {run['scenario']:24} {run['broker']:9} "
        f"{metric}={result.get(metric)} other load: {noise} {status}",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
