"""Processes started by tests as a deployment runs them: the environment a deployment sets, pointed at
this run's test database and Redis, and a command run in a process group of its own."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connections

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_url_of_this_run() -> str:
    """This run's test database (pytest-django's), as a DATABASE_URL for another process."""
    database = connections["default"].settings_dict  # renamed to the test database by django_db_setup
    password = f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else ""
    return (
        f"postgres://{quote(database['USER'])}{password}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


@dataclass
class Process:
    """A command run in a shell of its own process group, its output in a file."""

    command: str
    output: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        with self.output.open("wb") as sink:
            self.popen = subprocess.Popen(
                self.command,
                shell=True,
                cwd=REPO,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    def wait_for(self, condition: Callable[[], bool], *, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.command!r} exited with {self.popen.returncode}:\n{self.text()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"{self.command!r}: timed out waiting\n{self.text()[-4000:]}")

    def stop(self) -> None:
        """SIGTERM to the process group this test started (make, gunicorn and its workers; celery)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


def deployment_environment(folder: Path) -> dict[str, str]:
    """What a deployment sets (README, "Environment"), pointed at this run's test database and Redis,
    with its files in ``folder``. Call with the test database set up (``django_db_setup``)."""
    (folder / "prometheus").mkdir()
    (folder / "media").mkdir()
    return {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(folder)),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PUBLIC_BASE_URL": "https://localhost",
        "DATABASE_URL": database_url_of_this_run(),
        "REDIS_URL": settings.REDIS_URL,
        "PHI_ENCRYPTION_KEYS": settings.PHI_ENCRYPTION_KEYS,
        "PHI_ACTIVE_KEY_ID": settings.PHI_ACTIVE_KEY_ID,
        "PHI_BLIND_INDEX_KEY": settings.PHI_BLIND_INDEX_KEY,
        "STRIPE_SECRET_KEY": "sk_test_deployment_test_stand_in",
        "STRIPE_WEBHOOK_SECRET": "whsec_deployment_test_stand_in",
        "STATIC_ROOT": str(folder / "static"),
        "MEDIA_ROOT": str(folder / "media"),
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "prometheus"),
        "WEB_CONCURRENCY": "2",
        "PORT": str(free_port()),
        # The virtual environment is installed already: make must not reinstall it for `make serve`.
        "MAKEFLAGS": "--old-file=.venv/.installed",
    }
