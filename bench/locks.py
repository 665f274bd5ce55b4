"""How long requests wait on row locks: ``pg_locks`` sampled every few milliseconds.

PostgreSQL stamps every lock a session waits for with ``waitstart`` (14 and later). A process of
its own (so the load driver's threads do not delay it) polls the ungranted locks of the benchmark
database every ``interval`` seconds and follows each wait (session, wait start) until it is gone.
A wait's length lies between the last sample that saw it (``seen_ms``, a lower bound) and the
first that did not (``ended_by_ms``, an upper bound); waits shorter than one interval may go unseen,
which is fine for a limit of 50 ms.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import psycopg

_WAITING = """
SELECT l.pid, l.locktype, l.mode, l.waitstart, clock_timestamp()
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND l.waitstart IS NOT NULL AND a.datname = %s
"""


@dataclass(frozen=True)
class LockWait:
    locktype: str
    mode: str
    seen_ms: float  # at least this long (the last sample that saw it)
    ended_by_ms: float  # at most this long (the first sample that no longer saw it)


def _sample(dsn: str, database: str, interval: float, stop: Connection) -> None:
    open_waits: dict[tuple[int, Any], dict[str, Any]] = {}
    done: list[LockWait] = []
    with psycopg.connect(dsn, autocommit=True) as connection:
        while True:
            rows = connection.execute(_WAITING, [database]).fetchall()
            now = rows[0][4] if rows else connection.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
            current = set()
            for pid, locktype, mode, waitstart, _now in rows:
                key = (pid, waitstart)
                current.add(key)
                entry = open_waits.setdefault(key, {"locktype": locktype, "mode": mode, "start": waitstart})
                entry["seen"] = now
            for key in list(open_waits):
                if key not in current:
                    entry = open_waits.pop(key)
                    done.append(
                        LockWait(
                            locktype=entry["locktype"],
                            mode=entry["mode"],
                            seen_ms=(entry["seen"] - entry["start"]).total_seconds() * 1000,
                            ended_by_ms=(now - entry["start"]).total_seconds() * 1000,
                        )
                    )
            if stop.poll():
                stop.recv()
                stop.send(done)
                return
            time.sleep(interval)


class LockWatch:
    """``with LockWatch(dsn, database) as watch: …`` then ``watch.waits``: every lock wait seen."""

    def __init__(self, dsn: str, database: str, interval: float = 0.005) -> None:
        self.dsn = dsn
        self.database = database
        self.interval = interval
        self.waits: list[LockWait] = []

    def __enter__(self) -> LockWatch:
        context = multiprocessing.get_context("spawn")
        self._ours, theirs = context.Pipe()
        self._process = context.Process(target=_sample, args=(self.dsn, self.database, self.interval, theirs))
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ours.send("stop")
        if self._ours.poll(30):
            self.waits = self._ours.recv()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def summarize(waits: list[LockWait], *, limit_ms: float) -> dict[str, Any]:
    """What the report says about lock waits: how many, the longest, and how many exceeded ``limit_ms``."""
    return {
        "waits": len(waits),
        "longest_seen_ms": round(max((w.seen_ms for w in waits), default=0.0), 1),
        "longest_ended_by_ms": round(max((w.ended_by_ms for w in waits), default=0.0), 1),
        "over_limit": sum(1 for w in waits if w.seen_ms > limit_ms),
        "limit_ms": limit_ms,
        "by_type": sorted({f"{w.locktype}/{w.mode}" for w in waits}),
    }
