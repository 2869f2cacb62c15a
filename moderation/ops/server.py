"""`moderation serve`: the API under gunicorn, configured from Settings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from moderation.core.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client itself


class ProcessLogging(glogging.Logger):
    """gunicorn's own lines (its start, workers' boots and errors) through the process's
    logging set-up, JSON or text like every other line, instead of gunicorn's format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in [h for h in self.error_log.handlers if getattr(h, "_gunicorn", False)]:
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True


class GunicornApp(BaseApplication):
    """Runs `create_app(settings)` in each gunicorn worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"{self.settings.host}:{self.settings.port}",
            "workers": self.settings.web_concurrency,
            # Threads let requests that wait for a decision (?wait=) block without starving others.
            "worker_class": "gthread",
            "threads": self.settings.web_threads,
            "timeout": int(self.settings.max_wait_seconds) + 30,
            "graceful_timeout": int(self.settings.max_wait_seconds) + 5,
            # No access log by default: it would carry client addresses (personal data).
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.settings.log_level.lower(),
            "logger_class": ProcessLogging,
            # Several API instances may share a host; the control socket path would collide.
            "control_socket_disable": True,
            "child_exit": child_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from moderation.app import create_app

        return create_app(self.settings)


def share_metrics_between_processes() -> None:
    """prometheus-client's multiprocess mode: every gunicorn process writes its figures to one
    directory, which /metrics adds up. It must be set before prometheus_client is imported."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):  # left by an earlier run
            stale.unlink()
    else:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="moderation-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    from moderation.http.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def run_api(settings: Settings) -> None:
    share_metrics_between_processes()
    GunicornApp(settings).run()
