"""Running a service in several worker processes (`wheelyard service NAME --workers N`).

uvicorn spawns the workers and each imports `worker_app`, which builds the app named by the
supervisor in `ROLE_ENV`. Metrics stay right across workers through the Prometheus client's
multiprocess mode: `prepare_metrics_dir` points every worker at one fresh directory before
any of them starts (wheelyard.shared.metrics).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from wheelyard.shared.config import Settings, load_settings
from wheelyard.shared.errors import ConfigurationError
from wheelyard.shared.logs import configure_logging
from wheelyard.shared.metrics import MULTIPROC_ENV

#: Which service a worker builds (set by the supervising `wheelyard service` process).
ROLE_ENV = "_WHEELYARD_WORKER_SERVICE"


def check_workers(settings: Settings, workers: int) -> None:
    """Workers of one service share nothing but the stores: an in-process cache would let
    them disagree (a page one worker changed, served stale by another)."""
    if workers > 1 and settings.cache_url.startswith("memory:"):
        raise ConfigurationError(
            "WHEELYARD_CACHE_URL: --workers needs a shared cache (redis://...), "
            "not the in-process memory:// cache"
        )


def prepare_metrics_dir(settings: Settings) -> Path:
    """The multiprocess metrics directory, emptied (values of an earlier run must not count);
    `PROMETHEUS_MULTIPROC_DIR` when set, else `<data dir>/metrics`."""
    configured = os.environ.get(MULTIPROC_ENV)
    directory = Path(configured) if configured else settings.data_dir / "metrics"
    if directory.exists():
        for child in directory.glob("*.db"):
            child.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def worker_app() -> FastAPI:
    """The app of one worker process (an import-string factory for uvicorn)."""
    from wheelyard.cli.main import Service, app_factory
    from wheelyard.shared.malloc import keep_returning_free_pages, tune_malloc

    tune_malloc()  # each worker is a process of its own
    keep_returning_free_pages()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return app_factory(Service(os.environ[ROLE_ENV]))(settings=settings)
