"""The API documentation: one OpenAPI document for every route, and Swagger UI served from
this server (no CDN: it works on a network without internet access).

The gateway's own routes (management API) are documented by its FastAPI app; the routes the
services answer (simple API, JSON API, uploads, yanks, deletions, search, cache) by theirs.
Each service serves its document at `SERVICE_OPENAPI`; the gateway asks each one through the
same app it dispatches to (the mounted app in embedded mode, the forwarder in split mode),
merges the paths and schemas into its own document, and keeps the result once every service
has answered. Swagger UI's files come from the `swagger-ui-bundle-v2` package.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from wheelyard.shared.web.app import SERVICE_OPENAPI

log = logging.getLogger(__name__)

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
ASSETS = "/docs/assets"


def merge_openapi(base: dict[str, Any], parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`base` with the paths and component schemas of each service's document in `parts`
    (by service name, which tags the service's untagged operations). A path or schema the
    base already has is kept as the base has it."""
    doc = copy.deepcopy(base)
    paths: dict[str, Any] = doc.setdefault("paths", {})
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for service, part in parts.items():
        for path, operations in part.get("paths", {}).items():
            target = paths.setdefault(path, {})
            for method, operation in operations.items():
                if method not in target:
                    operation = copy.deepcopy(operation)
                    operation.setdefault("tags", [service])
                    target[method] = operation
        for name, schema in part.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                log.warning("OpenAPI schema %s of %s differs from the gateway's", name, service)
            schemas.setdefault(name, schema)
    doc["paths"] = dict(sorted(paths.items()))
    return doc


async def _service_document(app: Any) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get(SERVICE_OPENAPI, timeout=10)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


async def merged_openapi(app: FastAPI) -> dict[str, Any]:
    """The whole API's OpenAPI document (cached once every service contributed)."""
    cached: dict[str, Any] | None = getattr(app.state, "merged_openapi", None)
    if cached is not None:
        return cached
    targets = app.state.gateway.dispatcher.targets
    parts: dict[str, dict[str, Any]] = {}
    complete = True
    for service, target in (
        ("index", targets.index),
        ("upload", targets.upload),
        ("proxy-cache", targets.proxy_cache),
    ):
        try:
            parts[service] = await _service_document(target)
        except (httpx.HTTPError, ValueError) as exc:
            complete = False  # a service is down (split mode): try again next time
            log.warning("no OpenAPI document from %s: %s", service, exc)
    document = merge_openapi(app.openapi(), parts)
    if complete:
        app.state.merged_openapi = document
    return document


def install_api_docs(app: FastAPI) -> None:
    """`/openapi.json` (merged), `/docs` (Swagger UI) and Swagger UI's files under `/docs/`."""

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(await merged_openapi(request.app))

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            # No validator badge: it would send the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")
