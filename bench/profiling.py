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

#: Where a sample's innermost frame sits, by a fragment of its file path;
#: the first match names the sample's category.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("mqttauth/mqtt/", "mqttauth codec"),
    ("mqttauth/broker/", "mqttauth broker"),
    ("mqttauth/jwt/", "mqttauth jwt"),
    ("mqttauth/store/", "mqttauth store"),
    ("mqttauth/", "mqttauth other"),
    ("joserfc/", "joserfc"),
    ("cryptography/", "cryptography"),
    ("twisted/logger/", "logging"),
    ("twisted/python/log.py", "logging"),
    ("string.py", "logging"),
    ("twisted/internet/", "twisted reactor and TCP"),
    ("twisted/python/", "twisted context"),
    ("json/", "json"),
    ("sqlite3", "sqlite"),
)


@dataclass(frozen=True)
class Ranking:
    samples: int
    self_share: list[tuple[str, float]]
    total_share: list[tuple[str, float]]
    category_share: list[tuple[str, float]]


def _category(frame: str) -> str:
    for fragment, name in CATEGORIES:
        if fragment in frame:
            return name
    return "other (stdlib, builtins)"


def start_py_spy(
    pid: int, output: Path, cpu: int, rate: int = 500
) -> subprocess.Popen[bytes]:
    """Start py-spy recording `pid` into `output` (raw format) until SIGINT.

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
    category_counts: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw_frames = [f for f in stack.split(";") if f]
        if not raw_frames:
            continue
        frames = [_frame_name(f) for f in raw_frames]
        category_counts[_category(raw_frames[-1])] += count
        samples += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            total_counts[name] += count
    if not samples:
        return Ranking(0, [], [], [])

    # Frames on nearly every stack (the reactor loop, twistd) say nothing.
    for name in [n for n, c in total_counts.items() if c > 0.9 * samples]:
        del total_counts[name]

    def shares(counts: Counter[str], limit: int = top) -> list[tuple[str, float]]:
        return [(name, n / samples) for name, n in counts.most_common(limit)]

    return Ranking(
        samples,
        shares(self_counts),
        shares(total_counts),
        shares(category_counts, len(category_counts)),
    )


def format_ranking(title: str, ranking: Ranking) -> str:
    lines = [f"{title}: {ranking.samples} samples", "", "self %  where"]
    lines += [f"{share * 100:6.1f}  {name}" for name, share in ranking.category_share]
    lines += ["", "self %  function"]
    lines += [f"{share * 100:6.1f}  {name}" for name, share in ranking.self_share]
    lines += ["", "total %  function (frames on over 90 % of stacks left out)"]
    lines += [f"{share * 100:7.1f}  {name}" for name, share in ranking.total_share]
    return "\n".join(lines)
