"""The README's deployment commands, run as written, as separate processes under the production
settings against this run's PostgreSQL test database and Redis: `manage.py check --deploy`,
`migrate`, `make serve` (collectstatic into a temporary folder, gunicorn with two workers on a free
port, real HTTP), a Celery worker and beat. Plus `make deploy-check` (what CI runs) and the checks it
would fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from config.celery import app as celery_app
from core.request_id import request_id_bound
from tests.metrics import samples
from tests.processes import REPO, Process, deployment_environment

# django_db: pytest-django creates only the databases that the collected tests ask for, and the
# processes started here use the test database (the tests themselves do not read it).
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db]

# The commands of the README's "Deployment" section, in its order; each is run below exactly so.
CHECK_DEPLOY = "python manage.py check --deploy --fail-level WARNING"
MIGRATE = "python manage.py migrate --noinput"
SERVE = "make serve"
WORKER = "celery -A config worker --loglevel=INFO"
BEAT = "celery -A config beat --loglevel=INFO"
README_COMMANDS = [CHECK_DEPLOY, MIGRATE, SERVE, WORKER, BEAT]
IMMUTABLE = "max-age=31536000, public, immutable"
# The policy's directives (django-csp writes them in no fixed order).
CSP = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self' https://checkout.stripe.com",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "object-src 'none'",
}


def readme_deployment_commands() -> list[str]:
    """The command lines of the ```sh blocks of the README's "## Deployment" section (comments cut)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_deployment_section_has_exactly_the_commands_run_here() -> None:
    assert readme_deployment_commands() == README_COMMANDS


# --- Processes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment_env(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What a deployment sets (README, "Environment"), pointed at this run's test database and Redis."""
    return deployment_environment(tmp_path_factory.mktemp("deployment"))


def run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, shell=True, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


# --- manage.py check --deploy and migrate ----------------------------------------------------------


def test_check_deploy_passes_with_a_deployments_environment(deployment_env: dict[str, str]) -> None:
    result = run(CHECK_DEPLOY, deployment_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (2 silenced)."


def test_migrate_applies_nothing_to_a_migrated_database(deployment_env: dict[str, str]) -> None:
    result = run(MIGRATE, deployment_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No migrations to apply." in result.stdout


def test_make_deploy_check_passes() -> None:
    # CI's `make test` runs it; the recipe sets the environment itself (env -i).
    result = run("make deploy-check", {"PATH": os.environ["PATH"], "MAKEFLAGS": "--old-file=.venv/.installed"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("System check identified no issues (2 silenced).")


@pytest.mark.parametrize(
    ("change", "finding"),
    [
        pytest.param({"STRIPE_SECRET_KEY": ""}, "(payments.E002)", id="no Stripe key"),
        pytest.param({"SECURE_SSL_REDIRECT": "false"}, "(security.W008)", id="no HTTPS redirect"),
        pytest.param({"SECURE_HSTS_SECONDS": "0"}, "(security.W004)", id="no HSTS"),
        pytest.param({"DJANGO_SECRET_KEY": "short"}, "(security.W009)", id="a weak secret key"),
        pytest.param(
            {"SECURE_HSTS_PRELOAD": "true", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "false"},
            "(security.W005)",
            id="preload without subdomains",
        ),
    ],
)
def test_check_deploy_fails_on_what_production_must_not_have(
    deployment_env: dict[str, str], change: dict[str, str], finding: str
) -> None:
    result = run(CHECK_DEPLOY, {**deployment_env, **change})

    assert result.returncode == 1
    assert finding in result.stderr


def test_production_refuses_to_start_without_allowed_hosts(deployment_env: dict[str, str]) -> None:
    env = {key: value for key, value in deployment_env.items() if key != "DJANGO_ALLOWED_HOSTS"}

    result = run(CHECK_DEPLOY, env)

    assert result.returncode == 1
    assert "Set the DJANGO_ALLOWED_HOSTS environment variable" in result.stderr


_PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
database = s.DATABASES["default"]
print(json.dumps({
    "DEBUG": s.DEBUG,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "CSRF_TRUSTED_ORIGINS": s.CSRF_TRUSTED_ORIGINS,
    "ENGINE": database["ENGINE"],
    "CONN_MAX_AGE": database["CONN_MAX_AGE"],
    "CONN_HEALTH_CHECKS": database["CONN_HEALTH_CHECKS"],
    "cookies": [s.SESSION_COOKIE_NAME, s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,
                s.CSRF_COOKIE_NAME, s.CSRF_COOKIE_SECURE, s.CSRF_COOKIE_HTTPONLY],
    "staticfiles": s.STORAGES["staticfiles"]["BACKEND"],
    "log_formatter": s.LOGGING["handlers"]["console"]["formatter"],
    "PAYMENTS_SANDBOX_ALLOWED": s.PAYMENTS_SANDBOX_ALLOWED,
}))
"""


def test_production_settings_from_a_deployments_environment(deployment_env: dict[str, str]) -> None:
    result = run(f"python -c '{_PRINT_SETTINGS}'", deployment_env)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        # the origin of PUBLIC_BASE_URL unless CSRF_TRUSTED_ORIGINS is set
        "CSRF_TRUSTED_ORIGINS": ["https://localhost"],
        "ENGINE": "django_prometheus.db.backends.postgresql",
        "CONN_MAX_AGE": 300,
        "CONN_HEALTH_CHECKS": True,
        "cookies": ["__Host-sessionid", True, True, "__Host-csrftoken", True, True],
        "staticfiles": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "log_formatter": "json",
        "PAYMENTS_SANDBOX_ALLOWED": False,
    }
    overridden = run(
        f"python -c '{_PRINT_SETTINGS}'",
        {
            **deployment_env,
            "CSRF_TRUSTED_ORIGINS": "https://a.example,https://b.example",
            "DATABASE_CONN_MAX_AGE": "0",
            "LOG_FORMAT": "plain",
        },
    )
    assert overridden.returncode == 0, overridden.stderr
    chosen = json.loads(overridden.stdout)
    assert chosen["CSRF_TRUSTED_ORIGINS"] == ["https://a.example", "https://b.example"]
    assert (chosen["CONN_MAX_AGE"], chosen["log_formatter"]) == (0, "plain")


# --- make serve: gunicorn, WhiteNoise, health, metrics, logs ----------------------------------------


@dataclass
class Server:
    process: Process
    base_url: str

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(f"{self.base_url}{path}", headers=headers, allow_redirects=False, timeout=30)


@pytest.fixture(scope="module")
def server(deployment_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    process = Process(SERVE, tmp_path_factory.mktemp("serve") / "output.log", deployment_env)
    base_url = f"http://127.0.0.1:{deployment_env['PORT']}"

    def answers() -> bool:
        try:
            return requests.get(f"{base_url}/health/live", timeout=10).status_code == 200
        except requests.RequestException:  # not listening yet, or a worker still starting
            return False

    try:
        process.wait_for(answers)
        yield Server(process, base_url)
    finally:
        process.stop()


HTTPS = {"X-Forwarded-Proto": "https"}


def test_the_sign_in_page_through_gunicorn_has_the_production_headers(server: Server) -> None:
    response = server.get("/accounts/login/", **HTTPS)

    assert response.status_code == 200
    assert {part.strip() for part in response.headers["Content-Security-Policy"].split(";")} == CSP
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-csrftoken=")
    assert {"HttpOnly", "Secure", "Path=/", "SameSite=Lax"} <= {part.strip() for part in cookie.split(";")}
    assert "Domain=" not in cookie
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert "Sign in" in response.text


def test_plain_http_is_sent_to_https(server: Server) -> None:
    response = server.get("/accounts/login/")

    assert response.status_code == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{server.base_url.rsplit(':', 1)[1]}/accounts/login/"


def test_fingerprinted_static_files_are_cached_for_a_year_and_compressed(server: Server) -> None:
    page = server.get("/accounts/login/", **HTTPS).text
    (stylesheet,) = re.findall(r'href="(/static/portal/portal\.[0-9a-f]{12}\.css)"', page)
    (script,) = re.findall(r'src="(/static/portal/portal\.[0-9a-f]{12}\.js)"', page)

    css = server.get(stylesheet, **HTTPS, **{"Accept-Encoding": "identity"})
    brotli = server.get(stylesheet, **HTTPS, **{"Accept-Encoding": "br"})
    gzipped = server.get(script, **HTTPS, **{"Accept-Encoding": "gzip"})
    unhashed = server.get("/static/portal/portal.css", **HTTPS)

    assert (css.status_code, css.headers["Cache-Control"], css.headers["Content-Type"]) == (
        200,
        IMMUTABLE,
        'text/css; charset="utf-8"',
    )
    assert ".site-header" in css.text
    assert (brotli.headers["Content-Encoding"], brotli.headers["Cache-Control"]) == ("br", IMMUTABLE)
    assert int(brotli.headers["Content-Length"]) < int(css.headers["Content-Length"])
    assert (gzipped.headers["Content-Encoding"], gzipped.headers["Cache-Control"]) == ("gzip", IMMUTABLE)
    assert (unhashed.status_code, unhashed.headers["Cache-Control"]) == (200, "max-age=60, public")


def test_health_through_gunicorn(server: Server) -> None:
    live, ready = server.get("/health/live"), server.get("/health/ready", Host="10.0.0.7")

    assert (live.status_code, live.json()) == (200, {"status": "ok", "checks": {}})
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "checks": {"database": "ok", "redis": "ok", "storage": "ok"}},
    )


def test_metrics_add_up_every_workers_requests_and_connections_persist(server: Server) -> None:
    healthz = (("method", "GET"), ("transport", "https"), ("view", "health"))
    connections = (("alias", "default"), ("vendor", "postgresql"))
    before = samples(server.get("/metrics").text)

    # When ten requests that query the database go to the two workers
    for _ in range(10):
        assert server.get("/healthz", **HTTPS).status_code == 200
    after = samples(server.get("/metrics").text)

    # Then the view counted all ten, whichever worker answered
    requests_name = "django_http_requests_total_by_view_transport_method_total"
    assert after[(requests_name, healthz)] - before.get((requests_name, healthz), 0) == 10
    # and at most one new database connection was opened per worker: connections are kept
    opened = after[("django_db_new_connections_total", connections)]
    assert opened - before.get(("django_db_new_connections_total", connections), 0) <= 2
    assert after[("medorder_metrics_source_up", (("source", "celery_broker"),))] == 1
    assert ("medorder_celery_queue_length", (("queue", "celery"),)) in after


def test_metrics_are_refused_through_a_proxy(server: Server) -> None:
    response = server.get("/metrics", **{"X-Forwarded-For": "198.51.100.7"})

    assert (response.status_code, response.text) == (403, "Forbidden\n")


def test_json_logs_carry_the_request_id_and_mask_link_tokens(server: Server) -> None:
    token = "tok_4Gm8QpZx2LvN7RcW5Ys9Bk"

    response = server.get(f"/pay/{token}?name=Vandermeulen", **HTTPS, **{"X-Request-ID": "gunicorn-request-0007"})

    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "gunicorn-request-0007"

    def request_lines() -> list[dict[str, Any]]:
        return [line for line in server.process.json_lines() if line["request_id"] == "gunicorn-request-0007"]

    server.process.wait_for(lambda: len(request_lines()) == 2, timeout=10)
    not_found, access = request_lines()
    assert (not_found["logger"], not_found["level"], not_found["message"]) == (
        "django.request",
        "WARNING",
        "Not Found: /pay/****s9Bk",
    )
    assert access["logger"] == "gunicorn.access"
    assert '"GET /pay/****s9Bk?… HTTP/1.1" 404' in access["message"]
    assert token not in server.process.text()
    assert "Vandermeulen" not in server.process.text()


# --- Celery worker and beat ---------------------------------------------------------------------------


@pytest.fixture
def empty_queue() -> Iterator[None]:
    celery_app.control.purge()
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = eager
        celery_app.control.purge()


def test_a_worker_process_runs_a_task_under_the_id_of_the_request_that_sent_it(
    deployment_env: dict[str, str], tmp_path: Path, empty_queue: None
) -> None:
    worker = Process(WORKER, tmp_path / "worker.log", deployment_env)
    try:
        worker.wait_for(lambda: any(line["message"].endswith(" ready.") for line in worker.json_lines()))

        # When a request's code sends the outbox sweep
        with request_id_bound("sent-by-request-0099"):
            celery_app.send_task("core.tasks.dispatch_outbox")

        # Then the worker's line for the finished task carries the request's id
        def finished() -> list[dict[str, Any]]:
            return [
                line
                for line in worker.json_lines()
                if "core.tasks.dispatch_outbox" in line["message"] and "succeeded" in line["message"]
            ]

        worker.wait_for(lambda: finished() != [], timeout=60)
        (line,) = finished()
        assert line["request_id"] == "sent-by-request-0099"
        assert line["level"] == "INFO"
    finally:
        worker.stop()


@pytest.mark.django_db(transaction=True)  # the beat process reads the committed schedule
@pytest.mark.usefixtures("beat_schedule")
def test_beat_starts_with_the_schedule_and_logs_json(deployment_env: dict[str, str], tmp_path: Path) -> None:
    beat = Process(BEAT, tmp_path / "beat.log", deployment_env)
    sent = "Scheduler: Sending due task outbox-sweep (core.tasks.dispatch_outbox)"
    try:
        beat.wait_for(lambda: any(line["message"] == "beat: Starting..." for line in beat.json_lines()))
        # The schedule is the database's (django-celery-beat): the sweep, never run, is due at once
        beat.wait_for(lambda: any(line["message"] == sent for line in beat.json_lines()), timeout=60)
    finally:
        beat.stop()
