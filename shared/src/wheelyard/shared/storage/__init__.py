"""Blob storage: the `BlobStore` protocol and `open_blob_store`, the one place a backend is
chosen (by the scheme of WHEELYARD_BLOB_URL).

The S3 backend is imported only when it is asked for (an `s3://` URL, or the `S3BlobStore`
attribute): the minio SDK and its crypto dependencies are not loaded by a process that keeps
its blobs on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from wheelyard.shared.errors import ConfigurationError
from wheelyard.shared.storage.base import (
    CHUNK_SIZE,
    MAX_READ_CHUNK,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobWriter,
    ListedBlob,
    WrittenBlob,
    blob_key_for,
    sha256_of_key,
)
from wheelyard.shared.storage.filesystem import FilesystemBlobStore
from wheelyard.shared.storage.s3_options import S3Options

if TYPE_CHECKING:
    from wheelyard.shared.storage.s3 import S3BlobStore

__all__ = [
    "CHUNK_SIZE",
    "MAX_READ_CHUNK",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobWriter",
    "FilesystemBlobStore",
    "ListedBlob",
    "S3BlobStore",
    "S3Options",
    "WrittenBlob",
    "blob_key_for",
    "open_blob_store",
    "sha256_of_key",
]


def open_blob_store(url: str, *, s3: S3Options | None = None) -> BlobStore:
    """Return the blob store that `url` names; no I/O happens until it is used.

    - `file:///abs/path`, or `file://./rel/path` (relative to the working directory):
      a `FilesystemBlobStore` rooted there.
    - `s3://bucket[/prefix]`: an `S3BlobStore`; `s3` (from WHEELYARD_S3_*) is then required.

    Raises `ConfigurationError` naming WHEELYARD_BLOB_URL (or WHEELYARD_S3_ENDPOINT) otherwise.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return FilesystemBlobStore(_file_path(url, parts.netloc, unquote(parts.path)))
    if scheme == "s3":
        bucket = parts.netloc
        if not bucket:
            raise ConfigurationError(f"WHEELYARD_BLOB_URL: {url!r} names no bucket (s3://bucket)")
        if s3 is None:
            raise ConfigurationError(
                f"WHEELYARD_BLOB_URL: {url!r} needs an S3 endpoint: set WHEELYARD_S3_ENDPOINT "
                "(host:port), WHEELYARD_S3_ACCESS_KEY and WHEELYARD_S3_SECRET_KEY"
            )
        from wheelyard.shared.storage.s3 import S3BlobStore

        return S3BlobStore(bucket, s3, prefix=unquote(parts.path).strip("/"))
    raise ConfigurationError(
        f"WHEELYARD_BLOB_URL: unsupported scheme {parts.scheme!r} in {url!r}; "
        "use file:///absolute/path or s3://bucket[/prefix]"
    )


def _file_path(url: str, host: str, path: str) -> Path:
    if host in ("", "localhost"):
        if not path:
            raise ConfigurationError(f"WHEELYARD_BLOB_URL: {url!r} names no directory")
        return Path(path)
    if host in (".", ".."):  # file://./blobs is a common spelling of a relative path
        return Path(host + path).absolute()
    raise ConfigurationError(
        f"WHEELYARD_BLOB_URL: {url!r} names host {host!r}; only local paths are supported "
        "(file:///absolute/path or file://./relative/path)"
    )


def __getattr__(name: str) -> Any:
    # PEP 562: `from wheelyard.shared.storage import S3BlobStore` imports minio only then.
    if name == "S3BlobStore":
        from wheelyard.shared.storage.s3 import S3BlobStore

        return S3BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
