"""gunicorn's configuration (`make serve`: `gunicorn --config config/gunicorn.py`).

Environment:
- ``WEB_CONCURRENCY``: worker processes; default ``worker_count()``: 2 per CPU core plus 1, at most 12.
- ``PORT`` (default 8000) or ``GUNICORN_BIND`` (e.g. ``127.0.0.1:8000``, ``unix:/run/medorder.sock``):
  where to listen. The default is every interface: a load balancer in front reaches the instance.
- ``GUNICORN_TIMEOUT``: seconds a worker may spend on one request before it is restarted (default 30).
- ``FORWARDED_ALLOW_IPS`` (gunicorn's own): the proxies whose X-Forwarded-* headers are trusted.
- ``PROMETHEUS_MULTIPROC_DIR``: the folder where the workers keep their metrics for /metrics to add
  up (its ``*.db`` files are removed at every start); a fresh temporary folder when unset.
- ``LOG_FORMAT`` / ``LOG_LEVEL``: as in the settings, so gunicorn's own lines match the application's.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from core.logging import build_logging

# Beyond this many processes one machine gains little and each worker holds a database connection;
# WEB_CONCURRENCY still sets any number.
MAX_DEFAULT_WORKERS = 12


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity: a container's cpuset included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(environ: Mapping[str, str] = os.environ, cores: int | None = None) -> int:
    """``WEB_CONCURRENCY`` when set (at least 1), else ``2 * cores + 1`` capped at ``MAX_DEFAULT_WORKERS``.

    Sync workers handle one request each; while one waits on PostgreSQL or Redis another can use
    the core, hence about two per core.
    """
    configured = environ.get("WEB_CONCURRENCY", "").strip()
    if configured:
        return max(1, int(configured))
    return min(2 * (cores if cores is not None else available_cores()) + 1, MAX_DEFAULT_WORKERS)


def _log_format(environ: Mapping[str, str]) -> str:
    # As the settings decide it: JSON under production settings (what config/wsgi.py defaults to).
    settings_module = environ.get("DJANGO_SETTINGS_MODULE", "config.settings.production")
    return environ.get("LOG_FORMAT") or ("json" if settings_module.endswith(".production") else "plain")


wsgi_app = "config.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
workers = worker_count()
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
# Longer than the load balancer's idle timeout is the balancer's job; a few seconds lets it reuse
# connections to this instance.
keepalive = 5
# Heartbeat files in memory, not on a (possibly slow or read-only) container disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - a tmpfs, gunicorn's own advice
# No control socket (gunicornc): one path per user would clash between instances on one machine.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
logconfig_dict = build_logging(_log_format(os.environ), os.environ.get("LOG_LEVEL", "INFO"))


def on_starting(server: Any) -> None:
    """Before any worker starts: the folder where every worker keeps its metrics for /metrics to add
    up (``PROMETHEUS_MULTIPROC_DIR``, else a new temporary one), emptied of an earlier run's files.

    Set here, in the master the workers are forked from, so it is in their environment before they
    import prometheus_client (which reads it on import); not at module level, so importing this file
    (the tests do) changes nothing.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="medorder-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    logging.getLogger("gunicorn.error").info("metrics of the workers are kept in %s", directory)


def child_exit(server: Any, worker: Any) -> None:
    """A worker that is gone stops counting in the live gauges (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
