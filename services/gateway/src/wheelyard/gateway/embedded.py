"""Embedded mode: the whole registry in one process (the default `wheelyard serve`).

The only module that imports the services, and only their `create_app`.
"""

from __future__ import annotations

from fastapi import FastAPI

from wheelyard.gateway.app import create_app
from wheelyard.index.app import create_app as create_index_app
from wheelyard.proxy_cache.app import create_app as create_proxy_cache_app
from wheelyard.shared.config import Settings
from wheelyard.shared.web.runtime import Runtime
from wheelyard.upload.app import create_app as create_upload_app


def embedded_services(runtime: Runtime) -> tuple[FastAPI, FastAPI, FastAPI]:
    """The three services' apps, sharing the gateway's runtime (stores, repository
    directory, page cache, verifier)."""
    return (
        create_index_app(runtime=runtime),
        create_upload_app(runtime=runtime),
        create_proxy_cache_app(runtime=runtime),
    )


def create_embedded_app(settings: Settings) -> FastAPI:
    """The gateway with every service mounted in-process, on the configured backends."""
    return create_app(settings=settings, services=embedded_services)
