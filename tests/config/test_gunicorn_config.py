"""config/gunicorn.py: how many workers, and what importing it changes (nothing)."""

from __future__ import annotations

import os

import pytest

from config import gunicorn as gunicorn_config


@pytest.mark.parametrize(
    ("environ", "cores", "workers"),
    [
        pytest.param({}, 1, 3, id="1 core"),
        pytest.param({}, 2, 5, id="2 cores"),
        pytest.param({}, 5, 11, id="5 cores"),
        pytest.param({}, 6, 12, id="6 cores: capped"),
        pytest.param({}, 64, 12, id="64 cores: capped"),
        pytest.param({"WEB_CONCURRENCY": "3"}, 64, 3, id="WEB_CONCURRENCY wins"),
        pytest.param({"WEB_CONCURRENCY": "40"}, 2, 40, id="WEB_CONCURRENCY above the cap"),
        pytest.param({"WEB_CONCURRENCY": "0"}, 2, 1, id="at least one"),
        pytest.param({"WEB_CONCURRENCY": " "}, 2, 5, id="blank: the default"),
    ],
)
def test_worker_count(environ: dict[str, str], cores: int, workers: int) -> None:
    assert gunicorn_config.worker_count(environ, cores=cores) == workers


def test_this_machines_cores_are_the_ones_this_process_may_use() -> None:
    assert gunicorn_config.available_cores() == len(os.sched_getaffinity(0))


def test_the_server_settings() -> None:
    assert gunicorn_config.wsgi_app == "config.wsgi:application"
    assert gunicorn_config.worker_class == "sync"
    assert gunicorn_config.control_socket_disable is True
    assert (gunicorn_config.accesslog, gunicorn_config.errorlog) == ("-", "-")
    # gunicorn's own lines go through the same filters as the application's
    handler = gunicorn_config.logconfig_dict["handlers"]["console"]
    assert handler["filters"] == ["request_id", "strip_query"]


@pytest.mark.parametrize(
    ("environ", "log_format"),
    [
        pytest.param({}, "json", id="production settings by default"),
        pytest.param({"DJANGO_SETTINGS_MODULE": "config.settings.production"}, "json", id="production"),
        pytest.param({"DJANGO_SETTINGS_MODULE": "config.settings.local"}, "plain", id="local"),
        pytest.param({"DJANGO_SETTINGS_MODULE": "config.settings.local", "LOG_FORMAT": "json"}, "json", id="asked"),
    ],
)
def test_gunicorns_log_format_follows_the_settings(environ: dict[str, str], log_format: str) -> None:
    assert gunicorn_config._log_format(environ) == log_format


def test_importing_the_configuration_sets_no_metrics_folder() -> None:
    # prometheus_client would switch this process to multi-process mode: only gunicorn's master sets it.
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
