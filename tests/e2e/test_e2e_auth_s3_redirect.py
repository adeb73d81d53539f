"""Private files served from object storage by redirect: presigned storage URLs sit behind a
redirect from a stable path (docs/standards.md §8).

With S3 blobs and WHEELYARD_BLOB_REDIRECT=true, the registry answers an authorized file GET with
a 302 to a presigned URL on the S3 host. pip (requests) and uv drop `Authorization` when a
redirect changes host or port, so that URL must work without credentials, while the registry's
own file URL still needs them.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from wheelyard.shared.storage import S3Options
from wheelyard.testing.clients import (
    PLAIN_OUTPUT,
    RequestRecorder,
    make_venv,
    run,
    uv_binary,
)
from wheelyard.testing.dist_factory import escaped_name, make_wheel
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.server import ServerProcess, clean_env
from wheelyard.testing.uploads import upload_file

ADMIN = ("admin", "s3-redirect-admin-password")
PIP_FLAGS = ["--isolated", "--no-cache-dir", "--disable-pip-version-check", "--no-input"]


class RedirectingRegistry:
    """A server on S3 blobs with redirects on, a private repository, a reader and one wheel."""

    def __init__(self, process: ServerProcess, directory: Path) -> None:
        self.process = process
        self.url = process.url
        setup = ManagementApi(self.url, ADMIN)
        self.repo = setup.repository("private", prefix="s3-priv")
        self.reader = setup.user("s3-reader")
        setup.grant(self.reader[0], self.repo, "read")
        self.project = unique_name("s3-private")
        module = f"{escaped_name(self.project)}/__init__.py"
        self.wheel = make_wheel(
            directory, self.project, "1.0", extra_members={module: "VERSION = '1.0'\n"}
        )
        r = upload_file(f"{self.url}/repositories/{self.repo}/", self.wheel, auth=ADMIN)
        assert r.status_code == 200, r.text

    def file_url(self, base: str | None = None) -> str:
        return f"{base or self.url}/repositories/{self.repo}/{self.project}/1.0/{self.wheel.name}"

    def simple_with_userinfo(self, base: str) -> str:
        host = base.replace("://", f"://{self.reader[0]}:{self.reader[1]}@", 1)
        return f"{host}/repositories/{self.repo}/simple/"


@pytest.fixture(scope="module")
def registry(
    seaweedfs_s3: S3Options, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedirectingRegistry]:
    env = {
        "WHEELYARD_ADMIN_PASSWORD": ADMIN[1],
        "WHEELYARD_BLOB_URL": f"s3://wheelyard-auth-{uuid.uuid4().hex[:8]}",
        "WHEELYARD_S3_ENDPOINT": seaweedfs_s3.endpoint,
        "WHEELYARD_S3_ACCESS_KEY": seaweedfs_s3.access_key,
        "WHEELYARD_S3_SECRET_KEY": seaweedfs_s3.secret_key,
        "WHEELYARD_S3_SECURE": "true" if seaweedfs_s3.secure else "false",
        "WHEELYARD_BLOB_REDIRECT": "true",
    }
    if seaweedfs_s3.region:
        env["WHEELYARD_S3_REGION"] = seaweedfs_s3.region
    with ServerProcess(tmp_path_factory.mktemp("s3-redirect-server"), env) as process:
        yield RedirectingRegistry(process, tmp_path_factory.mktemp("s3-redirect-dists"))


def test_authorized_file_get_redirects_to_a_presigned_url_that_needs_no_credentials(
    registry: RedirectingRegistry, seaweedfs_s3: S3Options
) -> None:
    anonymous = http.get(registry.file_url(), follow_redirects=False)
    redirect = http.get(registry.file_url(), auth=registry.reader, follow_redirects=False)

    assert anonymous.status_code == 401, anonymous.text
    assert "location" not in anonymous.headers
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    parts = urlsplit(location)
    assert parts.netloc == seaweedfs_s3.endpoint, location  # the S3 host, not the registry's
    assert parts.username is None and registry.reader[1] not in location
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=" in location
    control = redirect.headers["cache-control"].lower()
    assert "no-store" in control or "private" in control
    presigned = http.get(location)  # no Authorization: as pip and uv would send it
    assert presigned.status_code == 200, presigned.text
    assert presigned.content == registry.wheel.read_bytes()
    # The signature is what opens it: the bucket itself is not readable anonymously.
    unsigned = http.get(location.split("?", 1)[0])
    assert unsigned.status_code == 403, unsigned.status_code


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_install_with_credentials_in_the_url_follows_the_redirect_to_storage(
    registry: RedirectingRegistry, tmp_path: Path, client: str
) -> None:
    target = tmp_path / "t"
    env = clean_env(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"), **PLAIN_OUTPUT)
    with RequestRecorder("127.0.0.1", registry.process.port) as recorder:
        index = registry.simple_with_userinfo(recorder.url)
        if client == "pip":
            python = make_venv(tmp_path / "venv", with_pip=True)
            args = [python, "-m", "pip", "install", *PIP_FLAGS, "--target", target]
            outcome = run([*args, "--index-url", index, registry.project], env=env)
        else:
            args = [uv_binary(), "pip", "install", "--no-cache", "--python", sys.executable]
            args += ["--target", target]
            outcome = run([*args, "--default-index", index, registry.project], env=env)

    outcome.succeeded()
    installed = target / escaped_name(registry.project) / "__init__.py"
    assert installed.read_text() == "VERSION = '1.0'\n"
    # The client asked the registry for the file (and was sent on to storage for the bytes).
    file_path = urlsplit(registry.file_url()).path
    assert ("GET", file_path) in recorder.requests, recorder.requests
