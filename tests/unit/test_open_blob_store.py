"""`open_blob_store` picks the backend by URL scheme, and names the key when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelyard.shared.errors import ConfigurationError
from wheelyard.shared.storage import (
    BlobStore,
    FilesystemBlobStore,
    S3BlobStore,
    S3Options,
    open_blob_store,
)

S3 = S3Options(endpoint="127.0.0.1:9000", access_key="k", secret_key="s", secure=False)


def test_file_url_absolute(tmp_path: Path) -> None:
    store = open_blob_store(f"file://{tmp_path}/blobs")
    assert isinstance(store, FilesystemBlobStore)
    assert isinstance(store, BlobStore)
    assert store.root == tmp_path / "blobs"
    assert not (tmp_path / "blobs").exists()  # opening does no I/O


def test_file_url_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_blob_store("file://./data/blobs")
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "data" / "blobs"


def test_file_url_with_spaces_and_localhost(tmp_path: Path) -> None:
    store = open_blob_store(f"file://localhost{tmp_path}/my%20blobs")
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "my blobs"


@pytest.mark.parametrize("url", ["file://otherhost/blobs", "file://"])
def test_file_url_must_be_local(url: str) -> None:
    with pytest.raises(ConfigurationError, match="WHEELYARD_BLOB_URL"):
        open_blob_store(url)


def test_s3_url() -> None:
    store = open_blob_store("s3://packages/wheelyard/blobs/", s3=S3)
    assert isinstance(store, S3BlobStore)
    assert isinstance(store, BlobStore)
    assert store.bucket == "packages"
    assert store.prefix == "wheelyard/blobs/"
    assert store.options is S3


def test_s3_url_without_prefix() -> None:
    store = open_blob_store("s3://packages", s3=S3)
    assert isinstance(store, S3BlobStore)
    assert store.prefix == ""


def test_s3_url_needs_s3_options() -> None:
    with pytest.raises(ConfigurationError, match="WHEELYARD_S3_ENDPOINT") as info:
        open_blob_store("s3://packages")
    assert info.value.message.startswith("WHEELYARD_BLOB_URL")


def test_s3_url_needs_a_bucket() -> None:
    with pytest.raises(ConfigurationError, match="WHEELYARD_BLOB_URL"):
        open_blob_store("s3:///prefix", s3=S3)


@pytest.mark.parametrize("bucket", ["ab", "bad..bucket", "10.0.0.1"])
def test_s3_bad_bucket_name(bucket: str) -> None:
    with pytest.raises(ConfigurationError, match="WHEELYARD_BLOB_URL"):
        open_blob_store(f"s3://{bucket}", s3=S3)


def test_s3_bad_endpoint() -> None:
    bad = S3Options(endpoint="http://minio:9000/x", access_key="k", secret_key="s")
    with pytest.raises(ConfigurationError, match="WHEELYARD_S3_ENDPOINT"):
        open_blob_store("s3://packages", s3=bad)


@pytest.mark.parametrize("url", ["gs://bucket", "memory://", "/var/lib/blobs", "http://x/y"])
def test_unknown_scheme_names_the_key(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^WHEELYARD_BLOB_URL: unsupported scheme"):
        open_blob_store(url)


def test_s3_options_hide_the_secret() -> None:
    assert "s3cr3t" not in repr(S3Options("h:1", "k", "s3cr3t"))
