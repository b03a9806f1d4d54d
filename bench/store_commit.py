"""Measure the SQLite store alone: QoS 1 messages journaled and acknowledged.

Each round puts ``--window`` in-flight messages for one session, deletes the
messages of the round before (their PUBACK came), and waits on commit(), the
way a broker journals a persistent subscriber that keeps up.  Then it times
``--lone`` commits of a single change each.  Prints one JSON line: messages
per second, transactions, the reactor thread's time per message, and the
median and 99th percentile wait of a lone commit.  Run from the repository
root:

    PYTHONPATH=. python3 bench/store_commit.py --messages 100000 --window 256
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, reactor

from mqttauth.store.records import SENT, MessageRecord
from mqttauth.store.sqlite import SQLiteStore


@defer.inlineCallbacks
def measure(arguments: argparse.Namespace, data_dir: str) -> Generator[Any, Any, None]:
    store = SQLiteStore(
        data_dir,
        reactor,
        commit_interval=arguments.commit_interval,
        synchronous=arguments.synchronous,
    )
    store.load()
    payload = b"x" * arguments.payload
    window = arguments.window
    reactor_seconds = 0.0
    key = 0
    started = time.perf_counter()
    for _ in range(arguments.messages // window):
        turn_started = time.perf_counter()
        for _ in range(window):
            key += 1
            record = MessageRecord(
                key, "bench/t", payload, 1, packet_id=key % 65535 + 1
            )
            record.state = SENT
            store.put_message("subscriber", record)
            if key > window:
                store.delete_message("subscriber", key - window)
        waiter = store.commit()
        reactor_seconds += time.perf_counter() - turn_started
        yield waiter
    elapsed = time.perf_counter() - started
    # Then lone changes, one per reactor turn: the wait of an
    # acknowledgement when the broker is nearly idle.
    waits = []
    for _ in range(arguments.lone):
        key += 1
        turn_started = time.perf_counter()
        store.put_message("subscriber", MessageRecord(key, "bench/t", payload, 1))
        yield store.commit()
        waits.append(time.perf_counter() - turn_started)
    waits.sort()
    yield store.close()
    result = {
        "scenario": "store_commit",
        "messages": key,
        "window": window,
        "commit_interval": arguments.commit_interval,
        "synchronous": arguments.synchronous,
        "messages_per_second": round(key / elapsed),
        "transactions": store.groups_written,
        "reactor_us_per_message": round(reactor_seconds / key * 1e6, 2),
        "lone_commit_ms_p50": round(waits[len(waits) // 2] * 1e3, 3) if waits else None,
        "lone_commit_ms_p99": round(waits[len(waits) * 99 // 100] * 1e3, 3)
        if waits
        else None,
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--payload", type=int, default=64, help="payload bytes")
    parser.add_argument("--lone", type=int, default=1000, help="lone commits timed")
    parser.add_argument("--commit-interval", type=float, default=0.0, help="seconds")
    parser.add_argument("--synchronous", choices=("normal", "full"), default="normal")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mqttauth-store-bench-") as data_dir:

        def run() -> None:
            measure(arguments, data_dir).addBoth(lambda _: reactor.stop())

        reactor.callWhenRunning(run)
        reactor.run()


if __name__ == "__main__":
    main()
