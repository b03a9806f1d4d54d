"""The benchmark scenarios, their targets, and the summary of several rounds.

A scenario is one mqttload invocation against one freshly started broker.
Arguments may name ``{pid}`` (the broker's pid) and ``{tokens:ALG}`` (a file
of distinct tokens signed with ALG), which the runner fills in.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BOTH = ("mqttauth", "mosquitto")
MQTTAUTH = ("mqttauth",)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    loadgen: tuple[str, ...]
    #: The figure compared across brokers, then other figures shown.
    metric: str
    extra_metrics: tuple[str, ...] = ()
    brokers: tuple[str, ...] = BOTH
    #: "anonymous", or "jwt" for the jwt authenticator with the bench JWKS.
    auth: str = "anonymous"
    #: "memory", or "durable" for ``--data-dir`` with a fresh folder.
    store: str = "memory"
    #: Whether a higher figure is better (throughput) or lower (latency).
    higher_is_better: bool = True
    #: Subprocess timeout in seconds, on top of the scenario's own bounds.
    timeout: float = 120.0


def _pubsub(*args: str) -> tuple[str, ...]:
    return ("pubsub", "--duration", "{duration}", *args)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "fanin_qos0",
        "4 publishers on distinct topics, one '#' subscriber, QoS 0, 64 B",
        _pubsub("--publishers", "4", "--topic", "bench/fanin/{i}", "--qos", "0"),
        "msgs_per_s",
        ("msgs_per_broker_cpu_s",),
    ),
    Scenario(
        "fanin_qos1",
        "as fanin_qos0 with QoS 1, 64 unacknowledged per publisher",
        _pubsub(
            "--publishers",
            "4",
            "--topic",
            "bench/fanin/{i}",
            "--qos",
            "1",
            "--window",
            "64",
        ),
        "msgs_per_s",
        ("msgs_per_broker_cpu_s", "lost", "duplicates"),
    ),
    Scenario(
        "fanout",
        "1 publisher, 50 subscribers on one topic, QoS 0, 64 B",
        _pubsub(
            "--publishers",
            "1",
            "--subscribers",
            "50",
            "--topic",
            "bench/fanout",
            "--filter",
            "bench/fanout",
            "--qos",
            "0",
        ),
        "msgs_per_s",
    ),
    Scenario(
        "connect",
        "2,000 connections, 50 at a time: CONNECT, CONNACK, DISCONNECT",
        ("connect", "--count", "2000", "--concurrency", "50"),
        "connects_per_s",
        ("connects_per_broker_cpu_s", "connack_p99_us"),
    ),
    Scenario(
        "connect_rs256",
        "as connect, RS256 JWT in MQTT 5 Authentication Data, distinct tokens",
        (
            "connect",
            "--count",
            "2000",
            "--concurrency",
            "50",
            "--auth",
            "enhanced",
            "--tokens",
            "{tokens:RS256}",
        ),
        "connects_per_s",
        ("connects_per_broker_cpu_s",),
        brokers=MQTTAUTH,
        auth="jwt",
    ),
    Scenario(
        "connect_rs256_same",
        "as connect_rs256, every connection with the same token",
        (
            "connect",
            "--count",
            "2000",
            "--concurrency",
            "50",
            "--auth",
            "enhanced",
            "--tokens",
            "{tokens:RS256}",
            "--same-token",
        ),
        "connects_per_s",
        ("connects_per_broker_cpu_s",),
        brokers=MQTTAUTH,
        auth="jwt",
    ),
    Scenario(
        "connect_rs256_password",
        "as connect_rs256, User Name JWT and the token as Password",
        (
            "connect",
            "--count",
            "2000",
            "--concurrency",
            "50",
            "--auth",
            "password",
            "--tokens",
            "{tokens:RS256}",
        ),
        "connects_per_s",
        ("connects_per_broker_cpu_s",),
        brokers=MQTTAUTH,
        auth="jwt",
    ),
    Scenario(
        "connect_es256",
        "as connect_rs256 with ES256 (P-256) tokens",
        (
            "connect",
            "--count",
            "2000",
            "--concurrency",
            "50",
            "--auth",
            "enhanced",
            "--tokens",
            "{tokens:ES256}",
        ),
        "connects_per_s",
        ("connects_per_broker_cpu_s",),
        brokers=MQTTAUTH,
        auth="jwt",
    ),
    Scenario(
        "connect_es256_same",
        "as connect_es256, every connection with the same token",
        (
            "connect",
            "--count",
            "2000",
            "--concurrency",
            "50",
            "--auth",
            "enhanced",
            "--tokens",
            "{tokens:ES256}",
            "--same-token",
        ),
        "connects_per_s",
        ("connects_per_broker_cpu_s",),
        brokers=MQTTAUTH,
        auth="jwt",
    ),
    Scenario(
        "reauth",
        "50 MQTT 5 clients, AUTH 0x19 with fresh RS256 tokens, 2,000 in all",
        (
            "reauth",
            "--connections",
            "50",
            "--count",
            "2000",
            "--tokens",
            "{tokens:RS256}",
        ),
        "reauths_per_s",
        ("reauths_per_broker_cpu_s", "auth_p99_us"),
        brokers=MQTTAUTH,
        auth="jwt",
    ),
    Scenario(
        "idle",
        "5,000 idle connections: broker VmRSS growth per connection",
        ("idle", "--count", "5000", "--broker-pid", "{pid}"),
        "bytes_per_connection",
        ("rss_before_kib", "rss_after_kib"),
        higher_is_better=False,
    ),
    Scenario(
        "latency",
        "1 publisher to 1 subscriber at 1,000 QoS 1 msgs/s: end-to-end",
        ("latency", "--rate", "1000", "--qos", "1", "--duration", "{duration}"),
        "p99_us",
        ("p50_us", "max_us"),
        higher_is_better=False,
    ),
    Scenario(
        "fanin_qos1_persistent",
        "fanin_qos1 with a persistent subscriber session, in-memory store",
        _pubsub(
            "--publishers",
            "4",
            "--topic",
            "bench/fanin/{i}",
            "--qos",
            "1",
            "--window",
            "64",
            "--session-expiry",
            "3600",
        ),
        "msgs_per_s",
        ("msgs_per_broker_cpu_s", "lost", "duplicates"),
        brokers=MQTTAUTH,
    ),
    Scenario(
        "fanin_qos1_durable",
        "fanin_qos1_persistent with the SQLite store (--data-dir)",
        _pubsub(
            "--publishers",
            "4",
            "--topic",
            "bench/fanin/{i}",
            "--qos",
            "1",
            "--window",
            "64",
            "--session-expiry",
            "3600",
        ),
        "msgs_per_s",
        ("msgs_per_broker_cpu_s", "lost", "duplicates"),
        brokers=MQTTAUTH,
        store="durable",
    ),
)

BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}


@dataclass(frozen=True)
class Target:
    """A goal: figure A divided by figure B compared with a bound.

    A figure is (scenario, broker, metric); B may be None for an absolute
    bound on A.
    """

    label: str
    numerator: tuple[str, str, str]
    denominator: tuple[str, str, str] | None
    bound: float
    at_least: bool


_RAW_TARGETS: tuple[Target, ...] = (
    Target(
        "fan-in QoS 0 vs Mosquitto",
        ("fanin_qos0", "mqttauth", "msgs_per_s"),
        ("fanin_qos0", "mosquitto", "msgs_per_s"),
        0.5,
        True,
    ),
    Target(
        "fan-in QoS 1 vs Mosquitto",
        ("fanin_qos1", "mqttauth", "msgs_per_s"),
        ("fanin_qos1", "mosquitto", "msgs_per_s"),
        0.5,
        True,
    ),
    Target(
        "fan-out vs Mosquitto",
        ("fanout", "mqttauth", "msgs_per_s"),
        ("fanout", "mosquitto", "msgs_per_s"),
        0.5,
        True,
    ),
    Target(
        "idle memory, bytes per connection",
        ("idle", "mqttauth", "bytes_per_connection"),
        None,
        4096,
        False,
    ),
    Target(
        "latency p99 vs Mosquitto",
        ("latency", "mqttauth", "p99_us"),
        ("latency", "mosquitto", "p99_us"),
        2.0,
        False,
    ),
    Target(
        "RS256 connect vs joserfc alone",
        ("connect_rs256", "mqttauth", "connects_per_s"),
        ("joserfc_RS256", "joserfc", "verifications_per_s"),
        0.4,
        True,
    ),
    Target(
        "ES256 connect vs joserfc alone",
        ("connect_es256", "mqttauth", "connects_per_s"),
        ("joserfc_ES256", "joserfc", "verifications_per_s"),
        0.4,
        True,
    ),
    Target(
        "RS256 connect, one token for all, vs joserfc alone",
        ("connect_rs256_same", "mqttauth", "connects_per_s"),
        ("joserfc_RS256", "joserfc", "verifications_per_s"),
        0.4,
        True,
    ),
    Target(
        "ES256 connect, one token for all, vs joserfc alone",
        ("connect_es256_same", "mqttauth", "connects_per_s"),
        ("joserfc_ES256", "joserfc", "verifications_per_s"),
        0.4,
        True,
    ),
    Target(
        "durable vs in-memory QoS 1 fan-in",
        ("fanin_qos1_durable", "mqttauth", "msgs_per_s"),
        ("fanin_qos1_persistent", "mqttauth", "msgs_per_s"),
        0.5,
        True,
    ),
)

#: Each throughput figure and its count per CPU second of the measured process.
PER_CPU = {
    "msgs_per_s": "msgs_per_broker_cpu_s",
    "connects_per_s": "connects_per_broker_cpu_s",
    "reauths_per_s": "reauths_per_broker_cpu_s",
    "verifications_per_s": "verifications_per_cpu_s",
}


def _per_cpu(target: Target) -> Target:
    """Return the target on counts per CPU second instead of per second.

    On a shared machine a broker gets only part of its core; dividing by the
    CPU time it did get estimates what it does on a core of its own, as long
    as it was the busy side.
    """
    numerator = (*target.numerator[:2], PER_CPU[target.numerator[2]])
    denominator = target.denominator
    if denominator is not None:
        denominator = (*denominator[:2], PER_CPU[denominator[2]])
    return Target(
        f"{target.label} (per CPU second)",
        numerator,
        denominator,
        target.bound,
        target.at_least,
    )


TARGETS: tuple[Target, ...] = _RAW_TARGETS + tuple(
    _per_cpu(t) for t in _RAW_TARGETS if t.numerator[2] in PER_CPU
)

Runs = Iterable[Mapping[str, Any]]


def figures(runs: Runs, scenario: str, broker: str, metric: str) -> list[float]:
    """Return the metric of every successful run of scenario on broker."""
    values = []
    for run in runs:
        if run["scenario"] != scenario or run["broker"] != broker:
            continue
        result = run.get("result") or {}
        if result.get("ok") and metric in result:
            values.append(float(result[metric]))
    return values


def median(runs: Runs, scenario: str, broker: str, metric: str) -> float | None:
    values = figures(runs, scenario, broker, metric)
    return statistics.median(values) if values else None


def spread(values: list[float]) -> float:
    """Return (max - min) / median, the relative spread of a figure."""
    if len(values) < 2:
        return 0.0
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else 0.0


def evaluate(runs: list[Mapping[str, Any]], target: Target) -> dict[str, Any]:
    """Return the target's value from medians, and whether it is met."""
    top = median(runs, *target.numerator)
    bottom = median(runs, *target.denominator) if target.denominator else 1.0
    if top is None or not bottom:
        return {"label": target.label, "value": None, "met": None}
    value = top / bottom
    met = value >= target.bound if target.at_least else value <= target.bound
    return {"label": target.label, "value": value, "met": met}
