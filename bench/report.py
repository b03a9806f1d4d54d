"""Render the runs of bench/run.py as Markdown tables.

Figures are medians over the rounds, with the lowest and highest run in
brackets; a run whose generator reported ``ok: false`` (lost messages,
failed connections, errors) is left out of the figures and listed apart.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from scenarios import TARGETS, Scenario, evaluate, figures

Run = Mapping[str, Any]


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    mid = statistics.median(values)
    if len(values) == 1:
        return _number(mid)
    return f"{_number(mid)} ({_number(min(values))}–{_number(max(values))})"


def figure_table(runs: Sequence[Run], scenarios: Sequence[Scenario]) -> list[str]:
    lines = [
        "| scenario | figure | mqttauth | Mosquitto | mqttauth / Mosquitto |",
        "|---|---|---|---|---|",
    ]
    for algorithm in ("RS256", "ES256"):
        metrics = ("verifications_per_s", "verifications_per_cpu_s", "same_token_per_s")
        for metric in metrics:
            values = figures(runs, f"joserfc_{algorithm}", "joserfc", metric)
            if values:
                lines.append(
                    f"| joserfc alone, {algorithm} | {metric} | {_cell(values)} "
                    "| – | – |"
                )
    for scenario in scenarios:
        for metric in (scenario.metric, *scenario.extra_metrics):
            ours = figures(runs, scenario.name, "mqttauth", metric)
            theirs = figures(runs, scenario.name, "mosquitto", metric)
            ratio = "–"
            if ours and theirs and statistics.median(theirs):
                ratio = f"{statistics.median(ours) / statistics.median(theirs):.2f}"
            lines.append(
                f"| {scenario.name} | {metric} | {_cell(ours)} | {_cell(theirs)} "
                f"| {ratio} |"
            )
    return lines


def target_table(runs: Sequence[Run]) -> list[str]:
    lines = ["| target | value (medians) | bound | met |", "|---|---|---|---|"]
    for target in TARGETS:
        outcome = evaluate(list(runs), target)
        if outcome["value"] is None:
            continue
        sign = ">=" if target.at_least else "<="
        met = "yes" if outcome["met"] else "**no**"
        lines.append(
            f"| {target.label} | {_number(outcome['value'])} | {sign} "
            f"{_number(target.bound)} | {met} |"
        )
    return lines


def noise_table(runs: Sequence[Run]) -> list[str]:
    """Summarise other processes' load on each core during the runs."""
    cores: dict[str, list[float]] = {}
    for run in runs:
        for core, load in run.get("other_load", {}).items():
            cores.setdefault(core, []).append(load)
    lines = [
        "| core | other load, median | max | runs above 0.10 |",
        "|---|---|---|---|",
    ]
    for core, loads in sorted(cores.items()):
        busy = sum(1 for load in loads if load > 0.10)
        lines.append(
            f"| cpu{core} | {statistics.median(loads):.2f} | {max(loads):.2f} "
            f"| {busy} of {len(loads)} |"
        )
    return lines


def saturation_table(runs: Sequence[Run], scenarios: Sequence[Scenario]) -> list[str]:
    """Show whether the broker or the generator was the busy side."""
    lines = [
        "| scenario | broker | broker CPU share | generator CPU share (max) |",
        "|---|---|---|---|",
    ]
    for scenario in scenarios:
        for broker in scenario.brokers:
            mine = [
                r
                for r in runs
                if r["scenario"] == scenario.name and r["broker"] == broker
            ]
            shares = [
                r["broker_cpu_fraction"] for r in mine if "broker_cpu_fraction" in r
            ]
            loadgen = [
                r["result"]["loadgen_window_cpu_fraction"]
                for r in mine
                if "loadgen_window_cpu_fraction" in (r.get("result") or {})
            ]
            if shares:
                lines.append(
                    f"| {scenario.name} | {broker} | "
                    f"{statistics.median(shares):.2f} | "
                    f"{max(loadgen) if loadgen else 0:.2f} |"
                )
    return lines


def failures(runs: Sequence[Run]) -> list[str]:
    lines = []
    for run in runs:
        result = run.get("result") or {}
        if result.get("ok") and "error" not in run:
            continue
        detail = run.get("error") or result.get("error") or "ok: false"
        keys = ("lost", "duplicates", "failed", "first_failure_code")
        counts = ", ".join(f"{k} {result[k]}" for k in keys if k in result)
        lines.append(
            f"- round {run['round']} {run['scenario']} on {run['broker']}: "
            f"{detail.splitlines()[0][:200] if detail else ''} {counts}"
        )
    return lines


def render(
    runs: Sequence[Run],
    scenarios: Sequence[Scenario],
    machine: Mapping[str, str],
    versions: Mapping[str, str],
) -> str:
    rounds = 1 + max((r["round"] for r in runs), default=0)
    parts = [
        f"## Figures (medians of {rounds} rounds, lowest–highest in brackets)",
        "",
        *figure_table(runs, scenarios),
        "",
        "## Targets",
        "",
        *target_table(runs),
        "",
        "## Noise: CPU used by other processes, share of each run's wall time",
        "",
        *noise_table(runs),
        "",
        "## Saturation: CPU share of the broker and of the generator",
        "",
        *saturation_table(runs, scenarios),
        "",
        "## Machine and versions",
        "",
        *(f"- {key}: {value}" for key, value in {**machine, **versions}.items()),
    ]
    failed = failures(runs)
    if failed:
        parts += ["", "## Runs left out", "", *failed]
    return "\n".join(parts)
