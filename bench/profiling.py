"""Sample a running broker with py-spy and rank where its time goes.

py-spy's ``raw`` output is one line per distinct stack: frames from the
outermost to the innermost, separated by ``;``, then a space and the number of
samples.  A function's self share counts the samples where it is innermost;
its total share counts the samples where it appears anywhere in the stack.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ranking:
    samples: int
    self_share: list[tuple[str, float]]
    total_share: list[tuple[str, float]]


def start_py_spy(
    pid: int, output: Path, seconds: float, cpu: int, rate: int = 200
) -> subprocess.Popen[bytes]:
    """Start py-spy recording `pid` for `seconds` into `output` (raw format).

    ``--nonblocking`` reads the broker's memory without pausing it, so the
    profile disturbs the run less, at the price of a few torn samples.
    """
    command = [
        "taskset",
        "-c",
        str(cpu),
        "py-spy",
        "record",
        "--pid",
        str(pid),
        "--output",
        str(output),
        "--format",
        "raw",
        "--rate",
        str(rate),
        "--duration",
        str(max(1, round(seconds))),
        "--nonblocking",
        "--function",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frame_name(frame: str) -> str:
    """Shorten ``func (path/to/module.py:12)`` to ``func (module.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def rank(raw: Path, top: int = 15) -> Ranking:
    """Rank functions by self and total share of the samples in `raw`."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            total_counts[name] += count
    if not samples:
        return Ranking(0, [], [])

    def shares(counts: Counter[str]) -> list[tuple[str, float]]:
        return [(name, n / samples) for name, n in counts.most_common(top)]

    return Ranking(samples, shares(self_counts), shares(total_counts))


def format_ranking(title: str, ranking: Ranking) -> str:
    lines = [f"{title}: {ranking.samples} samples", "", "self %  function"]
    lines += [f"{share * 100:6.1f}  {name}" for name, share in ranking.self_share]
    lines += ["", "total %  function"]
    lines += [f"{share * 100:7.1f}  {name}" for name, share in ranking.total_share]
    return "\n".join(lines)
