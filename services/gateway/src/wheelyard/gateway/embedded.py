"""Embedded mode: the whole registry in one process (the default `wheelyard serve`).

The only module that imports the services, and only their `create_app`.
"""

from __future__ import annotations

from fastapi import FastAPI

from wheelyard.gateway.app import create_app
from wheelyard.index.app import create_app as create_index_app
from wheelyard.proxy_cache.app import create_app as create_proxy_cache_app
from wheelyard.shared.backends import Backends
from wheelyard.shared.config import Settings
from wheelyard.upload.app import create_app as create_upload_app


def embedded_services(backends: Backends) -> tuple[FastAPI, FastAPI, FastAPI]:
    """The three services' apps, sharing `backends` with the gateway."""
    return (
        create_index_app(backends=backends),
        create_upload_app(backends=backends),
        create_proxy_cache_app(backends=backends),
    )


def create_embedded_app(settings: Settings) -> FastAPI:
    """The gateway with every service mounted in-process, on the configured backends."""
    return create_app(settings=settings, services=embedded_services)
