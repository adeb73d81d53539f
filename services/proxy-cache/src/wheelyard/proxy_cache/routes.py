"""HTTP routes of the proxy_cache service: parse, call the service layer, shape the response."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
