"""Bundles for air-gapped transfer: a repository's files as a plain static index on disk.

A bundle is a directory that any PEP 503 client reads as it is
(`pip install --index-url file:///DIR/simple/ ...`):

    DIR/simple/index.html, index.json                 the project list (PEP 503, PEP 691)
    DIR/simple/<project>/index.html, index.json       project pages: sha256 fragments and
                                                      hashes, sizes and upload times (PEP 700),
                                                      yanks (PEP 592), core metadata (PEP 658)
    DIR/files/<project>/<filename>                    the distributions
    DIR/files/<project>/<filename>.metadata           their core metadata (PEP 658)
    DIR/manifest.json                                 sha256 and size of every file above, and
                                                      what each distribution is (for imports)
    DIR/manifest.json.sig                             optional Ed25519 signature of the manifest

pip reads `index.html` of a `file:` URL that names a directory (pip's
`_internal/index/collector.py`), and page links are relative, so the tree works wherever it is
copied. `verify_bundle` checks every file against the manifest (and the manifest against its
signature when a public key is given) before anything is trusted: an import is refused, naming
the file, when a single byte differs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from anyio import to_thread
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.db.models import ProxyFile
from wheelyard.shared.domain import hosted, proxied
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import IntegrityFailure, InvalidInput
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.model import ProjectList, ProjectPage, SimpleFile
from wheelyard.shared.packaging.simple.render_html import render_index_html, render_project_html
from wheelyard.shared.packaging.simple.render_json import render_index_json, render_project_json
from wheelyard.shared.storage import BlobStore

FORMAT = "wheelyard-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
#: The largest manifest read (about 40,000 files).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BundledDist:
    """One distribution in a bundle: what its page says and where its bytes are stored."""

    project: str
    version: str
    filename: str
    sha256: str
    size: int
    upload_time: str | None  # ISO 8601, UTC
    requires_python: str | None
    yanked: bool | str
    metadata_sha256: str | None
    blob_key: str = ""
    metadata_blob_key: str | None = None

    @property
    def path(self) -> str:
        """The distribution's path inside the bundle."""
        return f"files/{self.project}/{self.filename}"

    def as_json(self) -> dict[str, Any]:
        """The manifest entry (no storage keys: they mean nothing on the other side)."""
        data = asdict(self)
        del data["blob_key"], data["metadata_blob_key"]
        return data


@dataclass(frozen=True)
class Manifest:
    """A verified bundle: its source repository and distributions."""

    repository: str
    dists: list[BundledDist]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def repository_dists(session: AsyncSession, view: RepositoryView) -> list[BundledDist]:
    """The distributions `view` holds: a hosted repository's live files, or the files a proxy
    repository fetched and verified (with what its stored pages say of them)."""
    if view.type == "hosted":
        return await _hosted_dists(session, view)
    if view.type == "proxy":
        return await _proxy_dists(session, view)
    raise InvalidInput(
        f"'{view.path}' is a group; export one of its hosted or proxy members instead"
    )


async def _hosted_dists(session: AsyncSession, view: RepositoryView) -> list[BundledDist]:
    found: list[BundledDist] = []
    for _display, name in (await hosted.project_list(session, view.id)).projects:
        project = await hosted.find_project(session, view.id, name)
        if project is None:
            continue
        for f, release in await hosted.live_files(session, project.id):
            found.append(
                BundledDist(
                    project=name,
                    version=release.version,
                    filename=f.filename,
                    sha256=f.sha256,
                    size=f.size,
                    upload_time=_iso(f.upload_time),
                    requires_python=f.requires_python,
                    yanked=(release.yanked_reason or True) if release.yanked else False,
                    metadata_sha256=f.metadata_sha256,
                    blob_key=f.blob_key,
                    metadata_blob_key=f.metadata_blob_key,
                )
            )
    return found


async def _proxy_dists(session: AsyncSession, view: RepositoryView) -> list[BundledDist]:
    rows = (
        await session.exec(
            select(ProxyFile)
            .where(ProxyFile.repository_id == view.id)
            .order_by(col(ProxyFile.project), col(ProxyFile.filename))
        )
    ).all()
    held = {row.filename: row for row in rows}
    found: list[BundledDist] = []
    for project in sorted({row.project for row in rows}):
        content = await proxied.load_content(session, view.id, project)
        listed = {f.filename: (f, v) for f, v in content.files_and_versions()} if content else {}
        for row in rows:
            if row.project != project or row.filename.endswith(".metadata"):
                continue
            entry, version = listed.get(row.filename, (None, listed_version(row.filename)))
            metadata = held.get(row.filename + ".metadata")
            found.append(
                BundledDist(
                    project=project,
                    version=version,
                    filename=row.filename,
                    sha256=row.sha256,
                    size=row.size,
                    upload_time=_iso(row.upload_time),
                    requires_python=entry.requires_python if entry else None,
                    yanked=entry.yanked if entry else False,
                    metadata_sha256=metadata.sha256 if metadata else None,
                    blob_key=row.blob_key,
                    metadata_blob_key=metadata.blob_key if metadata else None,
                )
            )
    return found


async def _copy_blob(blobs: BlobStore, key: str, sha256: str, target: Path) -> int:
    """Write blob `key` to `target`, checking it still has the sha256 it was stored under."""
    digest, size = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        async for chunk in blobs.open(key):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        raise IntegrityFailure(f"the stored bytes of '{target.name}' do not match their sha256")
    return size


def _pages(dists: list[BundledDist]) -> dict[str, ProjectPage]:
    by_project: dict[str, list[BundledDist]] = {}
    for dist in dists:
        by_project.setdefault(dist.project, []).append(dist)
    pages = {}
    for project, files in sorted(by_project.items()):
        pages[project] = ProjectPage(
            name=project,
            files=[
                SimpleFile(
                    filename=d.filename,
                    # Relative to simple/<project>/: the tree works wherever it is copied.
                    url=f"../../files/{quote(project)}/{quote(d.filename, safe='')}",
                    sha256=d.sha256,
                    size=d.size,
                    upload_time=datetime.fromisoformat(d.upload_time) if d.upload_time else None,
                    requires_python=d.requires_python,
                    yanked=d.yanked,
                    core_metadata_sha256=d.metadata_sha256,
                    has_core_metadata=d.metadata_sha256 is not None,
                )
                for d in files
            ],
            versions=sorted({d.version for d in files}),
        )
    return pages


async def write_bundle(
    blobs: BlobStore,
    view: RepositoryView,
    dists: list[BundledDist],
    out: Path,
    *,
    sign_key: Ed25519PrivateKey | None = None,
) -> int:
    """Write `dists` of `view` as a bundle into `out` (which must not exist or be empty);
    returns the number of files written (pages and manifest included)."""
    await to_thread.run_sync(_check_empty, out)
    written: dict[str, tuple[str, int]] = {}

    def put(relative: str, data: bytes) -> None:
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written[relative] = (hashlib.sha256(data).hexdigest(), len(data))

    for dist in dists:
        size = await _copy_blob(blobs, dist.blob_key, dist.sha256, out / dist.path)
        written[dist.path] = (dist.sha256, size)
        if dist.metadata_blob_key is not None and dist.metadata_sha256 is not None:
            path = dist.path + ".metadata"
            size = await _copy_blob(blobs, dist.metadata_blob_key, dist.metadata_sha256, out / path)
            written[path] = (dist.metadata_sha256, size)
    pages = _pages(dists)
    for project, page in pages.items():
        put(f"simple/{project}/index.html", render_project_html(page, memo=False))
        put(f"simple/{project}/index.json", render_project_json(page, memo=False))
    listing = ProjectList(projects=tuple((p, p) for p in pages))
    put("simple/index.html", render_index_html(listing))
    put("simple/index.json", render_index_json(listing))
    manifest = {
        "format": FORMAT,
        "repository": view.path,
        "created": _iso(datetime.now(UTC)),
        "files": [
            {"path": path, "sha256": sha, "size": size}
            for path, (sha, size) in sorted(written.items())
        ],
        "dists": [d.as_json() for d in dists],
    }
    body = json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n"
    (out / MANIFEST).write_bytes(body)
    if sign_key is not None:
        (out / SIGNATURE).write_bytes(base64.b64encode(sign_key.sign(body)) + b"\n")
    return len(written) + 1 + (sign_key is not None)


def _check_empty(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} is not empty; export into a new directory")


def _safe_path(relative: object) -> str:
    if not isinstance(relative, str) or not relative:
        raise IntegrityFailure(f"the manifest names an invalid path {relative!r}")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative or "\x00" in relative:
        raise IntegrityFailure(f"the manifest names a path outside the bundle: {relative!r}")
    return relative


def _file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_bundle(directory: Path, *, public_key: Ed25519PublicKey | None = None) -> Manifest:
    """Check bundle `directory` completely (blocking: call it in a worker thread): the
    manifest's signature (when `public_key` is given: then a signature is required), then the
    sha256 and size of every file it lists. Raises IntegrityFailure naming the first file
    that is missing or differs; InvalidInput when the directory is no bundle."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise InvalidInput(f"{directory} is not a bundle: it has no {MANIFEST}")
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise InvalidInput(f"{manifest_path} is larger than {MAX_MANIFEST_BYTES} bytes")
    body = manifest_path.read_bytes()
    if public_key is not None:
        signature_path = directory / SIGNATURE
        if not signature_path.is_file():
            raise IntegrityFailure(f"{SIGNATURE} is missing: the bundle is not signed")
        try:
            public_key.verify(base64.b64decode(signature_path.read_bytes().strip()), body)
        except (InvalidSignature, ValueError):
            raise IntegrityFailure(
                f"{MANIFEST} does not match its signature ({SIGNATURE})"
            ) from None
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise IntegrityFailure(f"{MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInput(f"{MANIFEST} is not a {FORMAT} manifest")
    listed: dict[str, str] = {}
    root = directory.resolve()
    for entry in data.get("files", []):
        relative = _safe_path(entry.get("path") if isinstance(entry, dict) else None)
        path = directory / relative
        if not path.is_file() or path.is_symlink():
            raise IntegrityFailure(f"'{relative}' is listed in the manifest but missing")
        if not path.resolve().is_relative_to(root):
            # A symlinked directory would read files from elsewhere on this machine.
            raise IntegrityFailure(f"'{relative}' lies outside the bundle (a symbolic link)")
        sha256, size = _file_sha256(path)
        if sha256 != entry.get("sha256") or size != entry.get("size"):
            raise IntegrityFailure(f"'{relative}' does not match the sha256 in the manifest")
        listed[relative] = sha256
    dists = [_dist(entry, listed) for entry in data.get("dists", [])]
    return Manifest(str(data.get("repository", "")), dists)


def _dist(entry: object, listed: dict[str, str]) -> BundledDist:
    if not isinstance(entry, dict):
        raise IntegrityFailure(f"{MANIFEST}: a distribution entry is not an object")
    try:
        dist = BundledDist(**{k: entry[k] for k in _DIST_FIELDS})
    except (KeyError, TypeError):
        raise IntegrityFailure(f"{MANIFEST}: a distribution entry is incomplete") from None
    if os.sep in dist.filename or "/" in dist.filename or "/" in dist.project:
        raise IntegrityFailure(f"{MANIFEST}: invalid distribution name {dist.filename!r}")
    if listed.get(dist.path) != dist.sha256:
        raise IntegrityFailure(f"'{dist.path}' is not covered by the manifest's file list")
    return dist


_DIST_FIELDS = (
    "project",
    "version",
    "filename",
    "sha256",
    "size",
    "upload_time",
    "requires_python",
    "yanked",
    "metadata_sha256",
)


def select_dists(
    dists: Iterable[BundledDist], filenames: set[str], versions: set[tuple[str, str]]
) -> tuple[list[BundledDist], set[str]]:
    """The dists named by `filenames` or by (project, version) in `versions`, and what was
    asked for that is not among `dists` (filenames, and `project==version` for versions)."""
    dists = list(dists)
    chosen = [
        d
        for d in dists
        if d.filename in filenames
        or any(p == d.project and hosted.same_version(v, d.version) for p, v in versions)
    ]
    missing = filenames - {d.filename for d in chosen}
    for project, version in versions:
        if not any(p == project and hosted.same_version(version, v) for p, v in _held(chosen)):
            missing.add(f"{project}=={version}")
    return chosen, missing


def _held(dists: list[BundledDist]) -> set[tuple[str, str]]:
    return {(d.project, d.version) for d in dists}
