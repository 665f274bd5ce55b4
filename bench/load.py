"""A small load driver: client threads with persistent HTTP connections, timed requests, percentiles.

``Measurement.run`` measures one endpoint at one concurrency side by side with its floor: after a
warm-up of both, it alternates slices of the endpoint (``slice_seconds``) and of the floor (half as
long) until the endpoint has been measured for ``seconds``, so both see the same machine at the
same moments (this machine is shared; its load drifts). Every response's time, status and query
count (``X-Bench-Queries``) is kept.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUERIES_HEADER = "X-Bench-Queries"
DATABASE_MS_HEADER = "X-Bench-DB-ms"


@dataclass(frozen=True)
class Call:
    """One request: method, path (with query), headers and a JSON body."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def encoded(self) -> tuple[bytes | None, dict[str, str]]:
        if self.body is None:
            return None, dict(self.headers)
        return json.dumps(self.body).encode(), {**self.headers, "Content-Type": "application/json"}


CallFactory = Callable[[int], Call]  # the n-th request of a run (0, 1, …) → what to send


@dataclass(frozen=True)
class Sample:
    seconds: float
    status: int
    queries: int | None
    database_ms: float | None


class Client:
    """One persistent connection to the server (reopened when the server closes it)."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=timeout)

    def send(self, call: Call) -> tuple[Sample, bytes, http.client.HTTPResponse]:
        body, headers = call.encoded()
        started = time.perf_counter()
        try:
            self.connection.request(call.method, call.path, body=body, headers=headers)
            response = self.connection.getresponse()
            content = response.read()
        except (http.client.HTTPException, OSError):
            self.connection.close()  # a dropped keep-alive connection: one retry on a fresh one
            started = time.perf_counter()
            self.connection.request(call.method, call.path, body=body, headers=headers)
            response = self.connection.getresponse()
            content = response.read()
        elapsed = time.perf_counter() - started
        queries = response.getheader(QUERIES_HEADER)
        database_ms = response.getheader(DATABASE_MS_HEADER)
        sample = Sample(
            seconds=elapsed,
            status=response.status,
            queries=int(queries) if queries is not None else None,
            database_ms=float(database_ms) if database_ms is not None else None,
        )
        return sample, content, response

    def close(self) -> None:
        self.connection.close()


class _Counter:
    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            self.value += 1
            return self.value - 1


def run_slice(clients: list[Client], make: CallFactory, counter: _Counter, seconds: float) -> list[Sample]:
    """Every client sends requests back to back for ``seconds``; the samples of all of them."""
    deadline = time.perf_counter() + seconds
    results: list[list[Sample]] = [[] for _ in clients]

    def work(index: int) -> None:
        client = clients[index]
        while time.perf_counter() < deadline:
            try:
                sample, _content, _response = client.send(make(counter.next()))
            except (http.client.HTTPException, OSError):
                # No answer even on a fresh connection (the server is gone): an error, and this client stops.
                results[index].append(Sample(seconds=0.0, status=0, queries=None, database_ms=None))
                return
            results[index].append(sample)

    # Daemon threads: an interrupted run does not wait for its clients.
    threads = [threading.Thread(target=work, args=(index,), daemon=True) for index in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [sample for per_client in results for sample in per_client]


@dataclass
class Series:
    """The samples of one endpoint (or floor) in one measurement, and the time they were measured for."""

    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if 200 <= s.status < 400]

    @property
    def errors(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for sample in self.samples:
            if not 200 <= sample.status < 400:
                counts[sample.status] = counts.get(sample.status, 0) + 1
        return counts

    def percentile_ms(self, percent: float) -> float | None:
        """Nearest-rank percentile of the successful responses' times, in milliseconds."""
        times = sorted(s.seconds for s in self.ok)
        if not times:
            return None
        rank = max(1, -(-len(times) * percent // 100))
        return round(times[int(rank) - 1] * 1000, 2)

    @property
    def throughput(self) -> float:
        return round(len(self.ok) / self.seconds, 1) if self.seconds else 0.0

    @property
    def queries(self) -> dict[str, int] | None:
        counts = [s.queries for s in self.ok if s.queries is not None]
        if not counts:
            return None
        return {"median": int(statistics.median(counts)), "min": min(counts), "max": max(counts)}

    @property
    def database_ms(self) -> float | None:
        times = [s.database_ms for s in self.ok if s.database_ms is not None]
        return round(statistics.median(times), 2) if times else None

    def summary(self) -> dict[str, Any]:
        return {
            "requests": len(self.samples),
            "errors": self.errors,
            "p50_ms": self.percentile_ms(50),
            "p95_ms": self.percentile_ms(95),
            "p99_ms": self.percentile_ms(99),
            "throughput_per_s": self.throughput,
            "queries": self.queries,
            "database_ms_median": self.database_ms,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class Measurement:
    """One endpoint at ``clients`` concurrent clients, with its floor measured in between."""

    host: str
    port: int
    clients: int
    seconds: float
    warmup_seconds: float
    slice_seconds: float = 1.0

    def run(self, endpoint: CallFactory, floor: CallFactory) -> tuple[Series, Series]:
        clients = [Client(self.host, self.port) for _ in range(self.clients)]
        endpoint_count, floor_count = _Counter(), _Counter()
        try:
            run_slice(clients, endpoint, endpoint_count, self.warmup_seconds)
            run_slice(clients, floor, floor_count, self.warmup_seconds / 2)
            measured, baseline = Series(), Series()
            while measured.seconds < self.seconds:
                started = time.perf_counter()
                measured.samples += run_slice(clients, endpoint, endpoint_count, self.slice_seconds)
                measured.seconds += time.perf_counter() - started
                started = time.perf_counter()
                baseline.samples += run_slice(clients, floor, floor_count, self.slice_seconds / 2)
                baseline.seconds += time.perf_counter() - started
            return measured, baseline
        finally:
            for client in clients:
                client.close()
