"""``make bench`` (``python -m bench.run``): the app under gunicorn against a data set of
``BENCH_ORDERS`` orders, each target endpoint measured beside its floor; a table, a JSON report
under ``bench/results/``, and exit status 1 when a target is missed (2 when the harness itself fails).

1. Data: ``medorder_bench_<size>_seed`` is generated once (``migrate``, then ``generate_orders``) and
   marked complete; every run measures a fresh copy of it, ``medorder_bench_<size>``
   (``CREATE DATABASE … TEMPLATE``, then ``migrate`` for migrations added since), so creates from
   earlier runs never pile up. ``BENCH_REUSE=1`` measures the existing copy as it is.
2. Serving: gunicorn (``BENCH_GUNICORN_ARGS``, default 2 sync workers) with ``config.settings.bench``
   on a free port of 127.0.0.1; Redis (a database of its own, emptied first) when it answers.
3. Load: for each endpoint and each concurrency (``BENCH_CLIENTS``, 1 and 4), a warm-up, then
   ``BENCH_SECONDS`` of requests alternating with its floor (``bench.load``); lock waits of the
   database sampled during the creates (``bench.locks``).

The gunicorn process group is stopped on every exit, an interrupt or SIGTERM included.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from .load import Call, CallFactory, Client, Measurement, Series
from .locks import LockWatch, summarize

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SETTINGS = "config.settings.bench"
LOCK_LIMIT_MS = 50.0
DEEP_PAGE_SHARE = 0.9  # page-numbered lists: the page holding the order 90% down the list
DEEP_CURSOR_LINKS = 40  # keyset-paginated lists: the page reached by following `next` this many times

# The ten products of the 10-item orders (every one billable to insurance and stocked, overlapping
# between concurrent orders) and the one of the 1-item orders.
TEN_SKUS = (
    "CPAP-MASK-FULL",
    "CPAP-MASK-NASAL",
    "CPAP-HEADGEAR",
    "CPAP-TUBING",
    "CPAP-FILTER-DISPOSABLE",
    "CPAP-WATER-CHAMBER",
    "DIAB-GLUCOSE-MONITOR",
    "DIAB-TEST-STRIPS-50",
    "DIAB-LANCETS-100",
    "WOUND-FOAM-BORDER-16",
)
ONE_SKU = "CPAP-FILTER-DISPOSABLE"
DIAGNOSES = ["G47.33", "E11.9", "L97.412"]


@dataclass(frozen=True)
class Config:
    orders: int
    territories: int
    seconds: float
    warmup: float
    clients: tuple[int, ...]
    only: frozenset[str]
    reuse: bool
    server: str
    redis_url: str
    gunicorn_args: tuple[str, ...]
    password: str

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        return cls(
            orders=int(env.get("BENCH_ORDERS", "10000")),
            territories=int(env.get("BENCH_TERRITORIES", "4")),
            seconds=float(env.get("BENCH_SECONDS", "10")),
            warmup=float(env.get("BENCH_WARMUP", "2")),
            clients=tuple(int(n) for n in env.get("BENCH_CLIENTS", "1,4").split(",")),
            only=frozenset(filter(None, env.get("BENCH_ONLY", "").split(","))),
            reuse=env.get("BENCH_REUSE") == "1",
            server=env.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432").rstrip("/"),
            redis_url=env.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
            gunicorn_args=tuple(
                env.get("BENCH_GUNICORN_ARGS", "--workers 2 --worker-class sync --timeout 120").split()
            ),
            password=env.get("BENCH_PASSWORD", "bench-password"),
        )

    @property
    def size(self) -> str:
        for unit, name in ((1_000_000, "m"), (1_000, "k")):
            if self.orders % unit == 0:
                return f"{self.orders // unit}{name}"
        return str(self.orders)

    def url(self, database: str) -> str:
        return f"{self.server}/{database}"


# --- data -------------------------------------------------------------------------------------


def _django_command(config: Config, database: str, *args: str) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "DATABASE_URL": config.url(database)}
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def generator_version() -> str:
    """A digest of the generator's code: a data set made by other code is made again."""
    digest = hashlib.sha256()
    for path in sorted(
        [*(ROOT / "orders" / "generation").glob("*.py"), ROOT / "orders/management/commands/seed_demo.py"]
    ):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def data_prepare(config: Config) -> dict[str, Any]:
    """The database to measure, fresh from the data set (generated first when missing, incomplete or
    made by another version of the generator)."""
    seed, run = f"medorder_bench_{config.size}_seed", f"medorder_bench_{config.size}"
    marker = (
        f"medorder bench data set: {config.orders} orders, {config.territories} territories, "
        f"generator {generator_version()}, complete"
    )
    info: dict[str, Any] = {"database": run, "data_set": seed, "generated_now": False}
    with psycopg.connect(config.url("postgres"), autocommit=True) as admin:
        comment = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [seed]
        ).fetchone()
        if comment is None or comment[0] != marker:
            print(f"Generating the data set {seed} ({config.orders} orders)…", flush=True)
            admin.execute(f'DROP DATABASE IF EXISTS "{seed}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{seed}"')
            started = time.monotonic()
            _django_command(config, seed, "migrate", "--noinput", "-v0")
            _django_command(
                config, seed, "generate_orders", "--count", str(config.orders), "--territories",
                str(config.territories), "--seed", "1", "--password", config.password,
            )  # fmt: skip
            info.update(generated_now=True, generation_seconds=round(time.monotonic() - started, 1))
            admin.execute(f"COMMENT ON DATABASE \"{seed}\" IS '{marker}'")
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [run]).fetchone()
        if not (config.reuse and exists):
            admin.execute(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')
            started = time.monotonic()
            admin.execute(f'CREATE DATABASE "{run}" TEMPLATE "{seed}"')
            info["copy_seconds"] = round(time.monotonic() - started, 1)
    _django_command(config, run, "migrate", "--noinput", "-v0")
    return info


def redis_available(url: str) -> bool:
    """Whether Redis answers at ``url``; its database is emptied for the run when it does."""
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=0.5):
            pass
    except OSError:
        return False
    import redis

    redis.Redis.from_url(url).flushdb()
    return True


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gunicorn(config: Config, env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    """gunicorn serving the app on 127.0.0.1:``port`` until the block ends (its whole process group
    is stopped then, whatever ends the block)."""
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "config.wsgi:application",
        "--bind", f"127.0.0.1:{port}", *config.gunicorn_args,
    ]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not listen within 60 s; see {log}") from None
                time.sleep(0.2)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# --- what the requests send --------------------------------------------------------------------


@dataclass(frozen=True)
class Fixtures:
    territory_id: str
    doctor: str
    provider_id: str
    patient_ids: list[str]  # the doctor's patients with Medicare coverage, for new orders
    order_ids: list[str]  # orders of the territory, in turn for the detail and the read floor


def fixtures_load(config: Config) -> Fixtures:
    """Who orders for whom in the benchmark, read with the application's models (Django set up here)."""
    import django

    django.setup()
    from orders.models import Order
    from patients.models import Patient, PayerKind, Provider
    from territories.models import Territory

    territory = Territory.objects.get(code="gen-01")
    doctor = "gen-01.dr01"
    provider = Provider.objects.get(user__username=doctor)
    patients = list(
        Patient.objects.filter(provider=provider, coverages__payer_kind=PayerKind.MEDICARE_FFS, coverages__active=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:400]
    )
    if len(patients) < 8:
        raise RuntimeError("The data set has too few Medicare patients for the benchmark's doctor.")
    # Orders from all over the territory's history, not one hot row.
    orders = Order.objects.filter(territory=territory).order_by("?").values_list("pk", flat=True)[:500]
    return Fixtures(str(territory.pk), doctor, str(provider.pk), [str(p) for p in patients], [str(pk) for pk in orders])


def token(host: str, port: int, username: str, password: str) -> str:
    client = Client(host, port)
    sample, content, _response = client.send(
        Call("POST", "/api/v1/auth/token", body={"username": username, "password": password})
    )
    client.close()
    if sample.status != 200:
        raise RuntimeError(f"POST /api/v1/auth/token for {username} answered {sample.status}: {content[:200]!r}")
    return str(json.loads(content)["token"])


def session_cookie(host: str, port: int, username: str, password: str) -> str:
    """Sign in through the real login form (CSRF cookie and token); the ``sessionid`` cookie."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", "/accounts/login/")
    response = connection.getresponse()
    page = response.read().decode()
    csrf_cookie = _cookie(response, "csrftoken")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if csrf_cookie is None or match is None:
        raise RuntimeError("The sign-in page gave no CSRF cookie or token.")
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": match[1]})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf_cookie}"}
    connection.request("POST", "/accounts/login/", body=form, headers=headers)
    response = connection.getresponse()
    response.read()
    session = _cookie(response, "sessionid")
    connection.close()
    if response.status != 302 or session is None:
        raise RuntimeError(f"Signing in as {username} answered {response.status} without a session.")
    return f"sessionid={session}; csrftoken={csrf_cookie}"


def _cookie(response: http.client.HTTPResponse, name: str) -> str | None:
    for header in response.headers.get_all("Set-Cookie") or []:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";")[0]
    return None


def deep_page(host: str, port: int, path: str, bearer: dict[str, str]) -> tuple[str, str]:
    """The path of a deep page of a list, and what "deep" means for it: with page numbers the page
    holding the order ``DEEP_PAGE_SHARE`` down the list; with a cursor (``next`` without ``page=``)
    the page ``DEEP_CURSOR_LINKS`` links on."""
    client = Client(host, port)
    try:
        _sample, content, _response = client.send(Call("GET", path, bearer))
        body = json.loads(content)
        next_link = body.get("next")
        if next_link and "page=" in urllib.parse.urlsplit(next_link).query and "count" in body:
            pages = max(1, math.ceil(body["count"] / max(1, len(body["results"]))))
            page = max(2, math.ceil(pages * DEEP_PAGE_SHARE))
            return f"{path}?page={page}", f"page {page} of {pages} (page numbers, {body['count']} orders)"
        links = 0
        while next_link and links < DEEP_CURSOR_LINKS:
            parts = urllib.parse.urlsplit(next_link)
            target = f"{parts.path}?{parts.query}"
            _sample, content, _response = client.send(Call("GET", target, bearer))
            next_link = json.loads(content).get("next")
            links += 1
        if not links:
            return path, "the first page (the list has one page)"
        return target, f"{links} `next` links on (keyset pagination)"
    finally:
        client.close()


# --- the measurements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    floor: str  # "write", "read" or "read_session"
    limit: float  # p95 at most this many times the floor's p95
    watch_locks: bool = False


TARGETS = (
    Target("create order, 1 item", "write", 2.5, watch_locks=True),
    Target("create order, 10 items", "write", 4.0, watch_locks=True),
    Target("order detail", "read", 2.0),
    Target("territory list, first page", "read", 2.0),
    Target("territory list, deep page", "read", 2.0),
    Target("portal home", "read_session", 2.0),
    Target("compliance check, 10 items", "read", 2.0),
)


@dataclass
class Row:
    target: str
    clients: int
    endpoint: dict[str, Any]
    floor_name: str
    floor: dict[str, Any]
    ratio: float | None
    limit: float
    locks: dict[str, Any] | None = None
    passed: bool = False
    why: list[str] = field(default_factory=list)


def calls(fixtures: Fixtures, bearer: dict[str, str], cookie: str, deep_path: str) -> dict[str, CallFactory]:
    """What each target and floor sends, per request number."""
    patients, order_ids = fixtures.patient_ids, fixtures.order_ids

    def create(items: list[dict[str, Any]]) -> CallFactory:
        def make(n: int) -> Call:
            body = {
                "patient_id": patients[n % len(patients)],
                "provider_id": fixtures.provider_id,
                "items": items,
                "payer_type": "insurance",
                "service_type": "Supplies",
                "diagnosis_codes": DIAGNOSES,
                "sign": True,
            }
            return Call("POST", "/api/v1/orders", bearer, body)

        return make

    ten = [{"sku": sku, "quantity": 1} for sku in TEN_SKUS]
    check = {
        "patient_id": patients[0],
        "provider_id": fixtures.provider_id,
        "items": ten,
        "payer_type": "insurance",
        "diagnosis_codes": DIAGNOSES,
        "signed": True,
    }
    session = {"Cookie": cookie}
    return {
        "create order, 1 item": create([{"sku": ONE_SKU, "quantity": 2}]),
        "create order, 10 items": create(ten),
        "order detail": lambda n: Call("GET", f"/api/v1/orders/{order_ids[n % len(order_ids)]}", bearer),
        "territory list, first page": lambda n: Call(
            "GET", f"/api/v1/orders/territory/{fixtures.territory_id}", bearer
        ),
        "territory list, deep page": lambda n: Call("GET", deep_path, bearer),
        "portal home": lambda n: Call("GET", "/portal/", session),
        "compliance check, 10 items": lambda n: Call("POST", "/api/portal/compliance/check", bearer, check),
        "write": lambda n: Call("POST", "/bench/floor/write", bearer),
        "read": lambda n: Call("GET", f"/bench/floor/read/{order_ids[n % len(order_ids)]}", bearer),
        "read_session": lambda n: Call("GET", f"/bench/floor/read/{order_ids[n % len(order_ids)]}", session),
    }


def judge(row: Row) -> None:
    if row.endpoint["errors"]:
        row.why.append(f"errors {row.endpoint['errors']}")
    if row.floor["errors"]:
        row.why.append(f"floor errors {row.floor['errors']}")
    if row.ratio is None:
        row.why.append("no successful responses")
    elif row.ratio > row.limit:
        row.why.append(f"p95 {row.ratio:.1f}x the floor (limit {row.limit}x)")
    if row.locks and row.locks["over_limit"]:
        row.why.append(f"{row.locks['over_limit']} lock waits over {LOCK_LIMIT_MS:.0f} ms")
    row.passed = not row.why


def measure(config: Config, fixtures: Fixtures, host: str, port: int, database: str) -> tuple[list[Row], str]:
    rows: list[Row] = []
    bearer = {"Authorization": f"Bearer {token(host, port, fixtures.doctor, config.password)}"}
    list_path = f"/api/v1/orders/territory/{fixtures.territory_id}"
    deep_path, deep_meaning = deep_page(host, port, list_path, bearer)
    for target in TARGETS:
        if config.only and target.name not in config.only:
            continue
        # Fresh credentials per target: tokens expire (30 min) and idle sessions end (15 min).
        bearer = {"Authorization": f"Bearer {token(host, port, fixtures.doctor, config.password)}"}
        cookie = session_cookie(host, port, fixtures.doctor, config.password) if target.floor == "read_session" else ""
        factories = calls(fixtures, bearer, cookie, deep_path)
        for clients in config.clients:
            print(f"  {target.name}, {clients} client(s) …", end="", flush=True)
            measurement = Measurement(host, port, clients, config.seconds, config.warmup)
            watch = LockWatch(config.url(database), database) if target.watch_locks else None
            with watch if watch is not None else nullcontext():
                endpoint, floor = measurement.run(factories[target.name], factories[target.floor])
            rows.append(_row(target, clients, endpoint, floor, watch))
            print(f" p95 {rows[-1].endpoint['p95_ms']} ms, floor {rows[-1].floor['p95_ms']} ms", flush=True)
    return rows, deep_meaning


def _row(target: Target, clients: int, endpoint: Series, floor: Series, watch: LockWatch | None) -> Row:
    summary, floor_summary = endpoint.summary(), floor.summary()
    p95, floor_p95 = summary["p95_ms"], floor_summary["p95_ms"]
    row = Row(
        target=target.name,
        clients=clients,
        endpoint=summary,
        floor_name=target.floor,
        floor=floor_summary,
        ratio=round(p95 / floor_p95, 2) if p95 and floor_p95 else None,
        limit=target.limit,
        locks=summarize(watch.waits, limit_ms=LOCK_LIMIT_MS) if watch is not None else None,
    )
    judge(row)
    return row


# --- the report -------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = ("endpoint", "clients", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "req/s", "queries",
            "floor p95", "ratio", "target", "lock waits", "result")  # fmt: skip
    lines = [head]
    for row in rows:
        e, f, q = row.endpoint, row.floor, row.endpoint["queries"]
        queries = (
            "-"
            if q is None
            else (str(q["median"]) if q["min"] == q["max"] else f"{q['median']} ({q['min']}-{q['max']})")
        )
        locks = "-" if row.locks is None else f"{row.locks['waits']}, max {row.locks['longest_seen_ms']:.0f} ms"
        lines.append((
            row.target, str(row.clients), str(e["requests"]), str(sum(e["errors"].values())),
            _ms(e["p50_ms"]), _ms(e["p95_ms"]), _ms(e["p99_ms"]), f"{e['throughput_per_s']:.1f}", queries,
            f"{_ms(f['p95_ms'])} ({row.floor_name})", "-" if row.ratio is None else f"{row.ratio:.1f}x",
            f"<= {row.limit}x", locks, "pass" if row.passed else "FAIL: " + "; ".join(row.why),
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    rendered = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)  # noqa: S607
        return out.stdout.strip()
    except OSError:
        return ""


def main() -> int:
    config = Config.from_env()
    # Both end the run through the clean-up (the server stops), also when started where SIGINT is ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    print(
        f"Benchmark: {config.orders} orders, {config.territories} territories, {config.seconds:.0f} s per measurement"
    )
    data = data_prepare(config)
    redis = redis_available(config.redis_url)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DATABASE_URL": config.url(data["database"]),
        "REDIS_URL": config.redis_url if redis else "",
    }
    os.environ.update(env)
    fixtures = fixtures_load(config)
    port = free_port()
    RESULTS.mkdir(exist_ok=True)
    with gunicorn(config, env, port, RESULTS / "gunicorn.log"):
        print(f"Serving on 127.0.0.1:{port} ({' '.join(config.gunicorn_args)}; Redis {'yes' if redis else 'no'})")
        rows, deep_meaning = measure(config, fixtures, "127.0.0.1", port, data["database"])
    report = {
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "commit": _git_commit(),
        "orders": config.orders,
        "territories": config.territories,
        "data": data,
        "deep_page": deep_meaning,
        "machine": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()},
        "server": {"gunicorn": list(config.gunicorn_args), "redis": redis, "settings": SETTINGS},
        "seconds_per_measurement": config.seconds,
        "results": [asdict(row) for row in rows],
        "passed": all(row.passed for row in rows),
    }
    path = RESULTS / f"{started:%Y%m%dT%H%M%SZ}-{config.size}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(table(rows))
    print()
    print(f"Deep page: {deep_meaning}. Lock waits: sampled from pg_locks every 5 ms during the creates;")
    print(f"'max' is the longest wait seen (a lower bound); a create fails past {LOCK_LIMIT_MS:.0f} ms.")
    print(f"Machine load (1/5/15 min) before {load_before}, after {os.getloadavg()}.")
    print(f"Report: {path.relative_to(ROOT)}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
    except (RuntimeError, subprocess.CalledProcessError, psycopg.Error) as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(2)
