"""How to reach an S3 endpoint: kept apart from the S3 store so that reading the settings
does not import the minio SDK."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class S3Options:
    """How to reach the S3 endpoint (WHEELYARD_S3_*). `endpoint` is `host:port`, no scheme."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = True
    region: str | None = None
