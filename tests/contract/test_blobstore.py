"""The BlobStore contract, run against every backend (`blob_store` is parametrized).

Large blobs are generated chunk by chunk and hashed incrementally: the tests hold no more than
one chunk at a time, as the stores promise to.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from anyio import to_thread
from minio.commonconfig import ENABLED, Filter
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

from wheelyard.shared.errors import BackendUnavailable, IntegrityFailure, TooLarge
from wheelyard.shared.storage import (
    CHUNK_SIZE,
    MAX_READ_CHUNK,
    BlobNotFound,
    BlobStore,
    FilesystemBlobStore,
    S3BlobStore,
    S3Options,
    blob_key_for,
)

MiB = 1024 * 1024


def chunks(n: int, *, seed: bytes = b"", size: int = MiB) -> Iterator[bytes]:
    """`n` deterministic, distinct chunks of `size` bytes (cheap to regenerate)."""
    for i in range(n):
        block = hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
        yield (block * (size // len(block) + 1))[:size]


def sha256_of(parts: Iterator[bytes] | list[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


async def read_all(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in it])


async def write_blob(store: BlobStore, parts: Iterator[bytes] | list[bytes], **kw: object):
    async with store.writer(**kw) as w:  # type: ignore[arg-type]
        for p in parts:
            await w.write(p)
    assert w.result is not None
    return w.result


async def assert_nothing_visible(store: BlobStore, *shas: str) -> None:
    """No blob under any of `shas`, no temporary data left (and for S3, no open upload)."""
    for sha in shas:
        assert await store.stat(blob_key_for(sha)) is None
    assert await store.list_temp() == []  # type: ignore[attr-defined]
    if isinstance(store, S3BlobStore):

        def open_uploads() -> list[str]:
            result = store._client._list_multipart_uploads(store.bucket, prefix=store.prefix)
            return [u.object_name for u in result.uploads]

        assert await to_thread.run_sync(open_uploads) == []


class Boom(Exception):
    """A failure in the caller's code while it feeds the writer."""


async def test_round_trip(blob_store: BlobStore) -> None:
    parts = [b"hello ", b"blob ", b"world"]
    data = b"".join(parts)
    written = await write_blob(blob_store, parts)

    sha = hashlib.sha256(data).hexdigest()
    assert written.sha256 == sha
    assert written.key == blob_key_for(sha)
    assert written.size == len(data)
    info = await blob_store.stat(written.key)
    assert info is not None
    assert (info.key, info.size) == (written.key, len(data))
    assert await read_all(blob_store.open(written.key)) == data


async def test_empty_blob(blob_store: BlobStore) -> None:
    written = await write_blob(blob_store, [])
    assert written.key == blob_key_for(hashlib.sha256(b"").hexdigest())
    assert written.size == 0
    info = await blob_store.stat(written.key)
    assert info is not None and info.size == 0
    assert await read_all(blob_store.open(written.key)) == b""


async def test_writer_reports_progress_and_coalesces_small_writes(blob_store: BlobStore) -> None:
    piece = b"0123456789abcdef" * 64  # 1 KiB: many small writes, as an HTTP body arrives
    h = hashlib.sha256()
    async with blob_store.writer() as w:
        for i in range(3000):  # ~2.9 MiB: crosses several chunk boundaries
            await w.write(piece)
            h.update(piece)
            if i % 1000 == 0:
                assert w.size == (i + 1) * len(piece)
                assert w.sha256 == h.hexdigest()
    assert w.result is not None
    assert w.result.sha256 == h.hexdigest() == w.sha256
    assert sha256_of([c async for c in blob_store.open(w.result.key)]) == h.hexdigest()


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, None),
        (1, None),
        (CHUNK_SIZE - 1, 2),
        (CHUNK_SIZE + 7, CHUNK_SIZE + 3),
        (100, 0),
        (3 * CHUNK_SIZE - 5, None),
        (3 * CHUNK_SIZE - 5, 100),  # length past the end: only what exists
        (3 * CHUNK_SIZE, None),  # offset at the end: nothing
        (3 * CHUNK_SIZE + 10, 5),  # offset past the end: nothing
    ],
)
async def test_open_with_offset_and_length(
    blob_store: BlobStore, offset: int, length: int | None
) -> None:
    data = b"".join(chunks(3, size=CHUNK_SIZE, seed=b"range"))
    written = await write_blob(blob_store, [data])
    got = b""
    async for c in blob_store.open(written.key, offset=offset, length=length):
        assert 0 < len(c) <= MAX_READ_CHUNK
        got += c
    end = None if length is None else offset + length
    assert got == data[offset:end]


async def test_missing_blob(blob_store: BlobStore) -> None:
    key = blob_key_for("0" * 64)
    assert await blob_store.stat(key) is None
    with pytest.raises(BlobNotFound):
        await read_all(blob_store.open(key))
    with pytest.raises(BlobNotFound):
        await read_all(blob_store.open(key, offset=5, length=0))


async def test_large_blob_streams_with_right_digest(blob_store: BlobStore) -> None:
    n = 40  # 40 MiB in 1 MiB chunks: several S3 parts; never held whole
    expected = sha256_of(chunks(n, seed=b"large"))
    written = await write_blob(blob_store, chunks(n, seed=b"large"))
    assert written.sha256 == expected
    assert written.size == n * MiB
    info = await blob_store.stat(written.key)
    assert info is not None and info.size == n * MiB

    h, size = hashlib.sha256(), 0
    async for c in blob_store.open(written.key):
        assert len(c) <= MAX_READ_CHUNK
        h.update(c)
        size += len(c)
    assert (h.hexdigest(), size) == (expected, n * MiB)
    await assert_nothing_visible(blob_store)  # no temp left after a commit either


async def test_concurrent_writers_of_same_content(blob_store: BlobStore) -> None:
    parts = list(chunks(3, seed=b"same"))
    results = []

    async def one() -> None:
        results.append(await write_blob(blob_store, parts))

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)

    assert len(results) == 8
    assert {r.key for r in results} == {blob_key_for(sha256_of(parts))}
    assert sha256_of([c async for c in blob_store.open(results[0].key)]) == sha256_of(parts)
    assert await blob_store.list_temp() == []  # type: ignore[attr-defined]


async def test_concurrent_writers_of_different_content(blob_store: BlobStore) -> None:
    payloads = {i: list(chunks(2, seed=f"diff{i}".encode(), size=700_000)) for i in range(6)}
    results = {}

    async def one(i: int) -> None:
        results[i] = await write_blob(blob_store, payloads[i])

    async with anyio.create_task_group() as tg:
        for i in payloads:
            tg.start_soon(one, i)

    assert len({r.key for r in results.values()}) == 6
    for i, parts in payloads.items():
        assert results[i].sha256 == sha256_of(parts)
        assert await read_all(blob_store.open(results[i].key)) == b"".join(parts)


async def test_error_midway_leaves_nothing(blob_store: BlobStore) -> None:
    # 20 MiB: past the first S3 part, so a multipart upload exists and must be aborted.
    parts = list(chunks(20, seed=b"boom"))
    with pytest.raises(Boom):
        async with blob_store.writer() as w:
            for p in parts:
                await w.write(p)
            raise Boom
    assert w.result is None
    await assert_nothing_visible(blob_store, sha256_of(parts))


async def test_error_before_any_write_leaves_nothing(blob_store: BlobStore) -> None:
    with pytest.raises(Boom):
        async with blob_store.writer():
            raise Boom
    await assert_nothing_visible(blob_store, hashlib.sha256(b"").hexdigest())


async def test_cancellation_midway_leaves_nothing(blob_store: BlobStore) -> None:
    parts = list(chunks(6, seed=b"cancel"))
    paused = anyio.Event()

    async def writer_task() -> None:
        async with blob_store.writer() as w:
            for p in parts:
                await w.write(p)
            paused.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer_task)
        await paused.wait()
        tg.cancel_scope.cancel()
    await assert_nothing_visible(blob_store, sha256_of(parts))


async def test_cancellation_while_writing_leaves_nothing(blob_store: BlobStore) -> None:
    # Cancel at whatever point a fast producer has reached (often waiting for room in the
    # S3 upload queue); the writer never finishes on its own.
    written = hashlib.sha256()

    async def flood() -> None:
        async with blob_store.writer() as w:
            for p in chunks(40, seed=b"flood"):
                await w.write(p)
                written.update(p)
            await anyio.sleep_forever()

    with anyio.move_on_after(0.3):
        await flood()
    await assert_nothing_visible(blob_store, written.hexdigest())


async def test_expected_sha256_mismatch(blob_store: BlobStore) -> None:
    parts = list(chunks(2, seed=b"sha"))
    with pytest.raises(IntegrityFailure):
        await write_blob(blob_store, parts, expected_sha256="ab" * 32)
    await assert_nothing_visible(blob_store, sha256_of(parts))


async def test_expected_size_mismatch(blob_store: BlobStore) -> None:
    parts = list(chunks(2, seed=b"size"))
    with pytest.raises(IntegrityFailure):
        await write_blob(blob_store, parts, expected_size=2 * MiB + 1)
    await assert_nothing_visible(blob_store, sha256_of(parts))


async def test_expected_digest_and_size_accepted(blob_store: BlobStore) -> None:
    parts = list(chunks(2, seed=b"ok"))
    sha = sha256_of(parts)
    written = await write_blob(
        blob_store, parts, expected_sha256=sha.upper(), expected_size=2 * MiB
    )
    assert written.key == blob_key_for(sha)


async def test_max_size_crossing(blob_store: BlobStore) -> None:
    parts = list(chunks(3, seed=b"max"))
    with pytest.raises(TooLarge):
        await write_blob(blob_store, parts, max_size=2 * MiB + 10)
    await assert_nothing_visible(
        blob_store, sha256_of(parts), sha256_of(parts[:2]), sha256_of(parts[:1])
    )
    # Exactly at the limit is allowed.
    written = await write_blob(blob_store, parts, max_size=3 * MiB)
    assert written.size == 3 * MiB


async def test_delete(blob_store: BlobStore) -> None:
    written = await write_blob(blob_store, [b"to be deleted"])
    await blob_store.delete(written.key)
    assert await blob_store.stat(written.key) is None
    with pytest.raises(BlobNotFound):
        await read_all(blob_store.open(written.key))
    await blob_store.delete(written.key)  # a missing blob is fine
    # And the same content can be written again.
    again = await write_blob(blob_store, [b"to be deleted"])
    assert await read_all(blob_store.open(again.key)) == b"to be deleted"


async def test_list_blobs_names_committed_blobs_with_size_and_age(blob_store: BlobStore) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    a = await write_blob(blob_store, [b"first listed blob"])
    b = await write_blob(blob_store, [b"second", b" listed blob"])
    gone = await write_blob(blob_store, [b"deleted before listing"])
    await blob_store.delete(gone.key)
    paused = anyio.Event()
    release = anyio.Event()
    listed = []

    async def in_flight() -> None:
        async with blob_store.writer() as w:
            await w.write(b"a write in progress is no blob yet")
            paused.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(in_flight)
        await paused.wait()
        listed = [blob async for blob in blob_store.list_blobs()]
        release.set()
    by_key = {blob.key: blob for blob in listed}
    assert set(by_key) == {a.key, b.key}
    assert by_key[a.key].size == a.size and by_key[b.key].size == b.size
    for blob in listed:
        assert blob.modified.tzinfo is not None
        assert before < blob.modified < datetime.now(UTC) + timedelta(minutes=5)


async def test_url_for(blob_store: BlobStore) -> None:
    data = b"fetch me without credentials"
    written = await write_blob(blob_store, [data])
    url = await blob_store.url_for(written.key, expires_seconds=60)
    if isinstance(blob_store, FilesystemBlobStore):
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        resp = await client.get(url)
    assert resp.status_code == 200
    assert resp.content == data


async def test_local_path(blob_store: BlobStore) -> None:
    data = b"send me without copying"
    written = await write_blob(blob_store, [data])
    path = await blob_store.local_path(written.key)
    if not isinstance(blob_store, FilesystemBlobStore):
        assert path is None  # no local files: nothing to send from
        return
    assert path is not None
    assert Path(path).read_bytes() == data
    await blob_store.delete(written.key)
    with pytest.raises(BlobNotFound):
        await blob_store.local_path(written.key)


async def test_a_staged_file_is_adopted_without_a_copy(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    data = b"written once, in the staging directory"
    key = blob_key_for(hashlib.sha256(data).hexdigest())
    staging = blob_store.staging_dir()
    if not isinstance(blob_store, FilesystemBlobStore):
        assert staging is None  # no local files: a file cannot become an object by a move
        elsewhere = tmp_path / "file"
        elsewhere.write_bytes(data)
        with pytest.raises(ValueError, match="staging"):
            await blob_store.adopt(elsewhere, key)
        assert await blob_store.stat(key) is None
        return
    assert staging is not None
    staging.mkdir(parents=True, exist_ok=True)
    staged = staging / "fetch-1.part"
    staged.write_bytes(data)
    inode = staged.stat().st_ino
    await blob_store.adopt(staged, key)
    assert not staged.exists()
    assert await read_all(blob_store.open(key)) == data
    local = await blob_store.local_path(key)
    assert local is not None and Path(local).stat().st_ino == inode  # moved, not copied
    # Only files of the staging directory, under well-formed keys, are adopted.
    outside = tmp_path / "outside.part"
    outside.write_bytes(data)
    with pytest.raises(ValueError, match="staging"):
        await blob_store.adopt(outside, key)
    staged.write_bytes(data)
    with pytest.raises(ValueError):
        await blob_store.adopt(staged, "../../etc/passwd")
    assert outside.exists() and staged.exists()
    assert await read_all(blob_store.open(key)) == data


async def test_ping(blob_store: BlobStore) -> None:
    await blob_store.ping()
    await assert_nothing_visible(blob_store)


async def test_ping_fails_fast_when_unusable(blob_store: BlobStore, tmp_path: Path) -> None:
    broken: FilesystemBlobStore | S3BlobStore
    if isinstance(blob_store, FilesystemBlobStore):
        not_a_dir = tmp_path / "a-file"
        not_a_dir.write_bytes(b"")
        broken = FilesystemBlobStore(not_a_dir)
    else:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        broken = S3BlobStore("nowhere", S3Options(f"127.0.0.1:{port}", "k", "s", secure=False))
    with anyio.fail_after(10):
        with pytest.raises(BackendUnavailable) as info:
            await broken.ping()
    assert info.value.part == "blobs"
    await broken.close()


async def test_s3_ping_returns_promptly_when_cancelled() -> None:
    # An endpoint that accepts connections and never answers: a readiness check that gives up
    # after its own timeout must get control back at once, not after the read timeout.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        store = S3BlobStore("stalled", S3Options(f"127.0.0.1:{port}", "k", "s", secure=False))
        start = anyio.current_time()
        with anyio.move_on_after(0.3):
            await store.ping()
        assert anyio.current_time() - start < 1.5
        await store.close()


BAD_KEYS = [
    "../secret",
    "/etc/passwd",
    "sha256/../../secret",
    "sha256/../../../secret",
    "sha256/ab/cd/../../../../secret",
    "",
    "sha256/11/00/" + "0" * 64,  # prefix dirs that do not match the digest
    blob_key_for("ab" * 32).upper(),
    blob_key_for("ab" * 32) + "\n",
    blob_key_for("ab" * 32) + "/..",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_invalid_keys_never_leave_the_store(
    blob_store: BlobStore, tmp_path: Path, key: str
) -> None:
    # For the filesystem store (root = tmp_path/"blobs") this file is where a naive join of
    # the traversal keys would land.
    (tmp_path / "secret").write_bytes(b"outside the store")
    assert await blob_store.stat(key) is None
    with pytest.raises(BlobNotFound):
        await read_all(blob_store.open(key))
    with pytest.raises(ValueError):
        await blob_store.delete(key)
    with pytest.raises(ValueError):
        await blob_store.url_for(key)
    if isinstance(blob_store, FilesystemBlobStore):
        with pytest.raises(BlobNotFound):
            await blob_store.local_path(key)
    assert (tmp_path / "secret").read_bytes() == b"outside the store"


async def test_early_stopped_reader_releases_its_resources(blob_store: BlobStore) -> None:
    parts = list(chunks(5, seed=b"early"))
    whole = b"".join(parts)
    written = await write_blob(blob_store, parts)
    # More rounds than the S3 connection pool holds: a leaked response would show.
    for _ in range(12):
        it = blob_store.open(written.key)
        async for first in it:
            assert first == whole[: len(first)]
            break
        await it.aclose()  # type: ignore[attr-defined]
        assert blob_store.open_streams == 0  # type: ignore[attr-defined]
    if isinstance(blob_store, FilesystemBlobStore):
        target = str(blob_store.root / written.key)
        fds = os.listdir("/proc/self/fd")
        open_files = [os.readlink(f"/proc/self/fd/{fd}") for fd in fds if _is_link(fd)]
        assert target not in open_files
    with anyio.fail_after(20):
        assert sha256_of([c async for c in blob_store.open(written.key)]) == sha256_of(parts)


def _is_link(fd: str) -> bool:
    try:
        os.readlink(f"/proc/self/fd/{fd}")
        return True
    except OSError:
        return False


async def test_write_outside_context_is_refused(blob_store: BlobStore) -> None:
    w = blob_store.writer()
    with pytest.raises(RuntimeError):
        await w.write(b"x")


async def test_sweep_temp_removes_only_old_leftovers(blob_store: BlobStore) -> None:
    paused = anyio.Event()
    release = anyio.Event()

    async def in_flight() -> None:
        async with blob_store.writer() as w:
            await w.write(b"still writing")
            paused.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(in_flight)
        await paused.wait()
        # A live write is younger than an hour: never swept.
        assert await blob_store.sweep_temp(3600) == 0  # type: ignore[attr-defined]
        release.set()
    assert await blob_store.list_temp() == []  # type: ignore[attr-defined]


async def test_sweep_temp_removes_crash_leftovers(blob_store: BlobStore) -> None:
    if isinstance(blob_store, FilesystemBlobStore):
        blob_store.temp_dir.mkdir(parents=True, exist_ok=True)
        leftover = blob_store.temp_dir / "blob-crashed.part"
        leftover.write_bytes(b"half a file")
        os.utime(leftover, (1, 1))  # abandoned long ago
        threshold = 3600.0
    else:
        assert isinstance(blob_store, S3BlobStore)
        name = f"{blob_store.prefix}tmp/crashed"
        await to_thread.run_sync(
            lambda: blob_store._client.put_object(
                blob_store.bucket, name, io.BytesIO(b"half a file"), 11
            )
        )
        threshold = -60.0  # object timestamps are the server's: treat "now" as old enough
    assert len(await blob_store.list_temp()) == 1  # type: ignore[attr-defined]
    assert await blob_store.sweep_temp(threshold) == 1  # type: ignore[attr-defined]
    assert await blob_store.list_temp() == []  # type: ignore[attr-defined]


async def test_recover_leftovers_removes_what_a_killed_writer_left(blob_store: BlobStore) -> None:
    """At start, leftovers of a crash go: every temp file of a store no live process uses (a
    filesystem store), abandoned multipart uploads and temp objects (S3, by age)."""
    if isinstance(blob_store, FilesystemBlobStore):
        blob_store.temp_dir.mkdir(parents=True, exist_ok=True)
        (blob_store.temp_dir / "blob-killed.part").write_bytes(b"half a file")  # just now
        assert await blob_store.recover_leftovers() == 1
        assert await blob_store.list_temp() == []  # type: ignore[attr-defined]
        return
    assert isinstance(blob_store, S3BlobStore)
    client, bucket = blob_store._client, blob_store.bucket
    await blob_store.ensure_bucket()
    name = f"{blob_store.prefix}tmp/killed"
    upload_id = await to_thread.run_sync(lambda: client._create_multipart_upload(bucket, name, {}))
    await to_thread.run_sync(
        lambda: client._upload_part(bucket, name, b"x" * (5 * MiB), None, upload_id, 1)
    )

    def pending() -> list[str]:
        page = client._list_multipart_uploads(bucket, prefix=f"{blob_store.prefix}tmp/")
        return [u.upload_id for u in page.uploads]

    assert await to_thread.run_sync(pending) == [upload_id]
    assert await blob_store.abort_stale_uploads(3600) == 0  # a live upload is never aborted
    # The server's clock stamps the upload: treat "now" as old enough.
    assert await blob_store.abort_stale_uploads(-60) == 1
    assert await to_thread.run_sync(pending) == []


async def test_a_live_writers_temp_file_survives_another_process_start(tmp_path: Path) -> None:
    """A second store on the same directory (another process starting) sees the first one's
    claim: only stale files go, the live write goes on and commits."""
    first = FilesystemBlobStore(tmp_path)
    assert await first.recover_leftovers() == 0
    second = FilesystemBlobStore(tmp_path)
    try:
        async with first.writer() as w:
            await w.write(b"live write")
            stale = first.temp_dir / "blob-old.part"
            stale.write_bytes(b"left long ago")
            os.utime(stale, (1, 1))
            assert await second.recover_leftovers() == 1
            assert len(await first.list_temp()) == 1  # the live write's file
        assert w.result is not None and await first.stat(w.result.key) is not None
    finally:
        await second.close()
        await first.close()
    # Both gone: the next start is alone and removes everything.
    third = FilesystemBlobStore(tmp_path)
    (third.temp_dir / "blob-fresh.part").write_bytes(b"killed just now")
    assert await third.recover_leftovers() == 1
    await third.close()


async def test_the_bucket_gets_a_rule_aborting_abandoned_uploads_and_keeps_its_own(
    seaweedfs_s3: S3Options,
) -> None:
    """SeaweedFS accepts and returns AbortIncompleteMultipartUpload rules; whether it enforces
    them is not ours to test (the start-up sweep covers it), keeping the other rules is."""
    bucket = "wy-lifecycle-" + os.urandom(4).hex()
    store = S3BlobStore(bucket, seaweedfs_s3, prefix="team")
    try:
        await store.ensure_bucket()
        client = store._client
        theirs = Rule(
            ENABLED,
            rule_filter=Filter(prefix="logs/"),
            rule_id="operators-own",
            expiration=Expiration(days=7),
        )
        await to_thread.run_sync(
            lambda: client.set_bucket_lifecycle(bucket, LifecycleConfig([theirs]))
        )
        store._lifecycle_ready = False  # a later start of the process
        assert await store.ensure_lifecycle_rule()
        config = await to_thread.run_sync(lambda: client.get_bucket_lifecycle(bucket))
        assert config is not None
        rules = {r.rule_id: r for r in config.rules}
        assert set(rules) == {"operators-own", "wheelyard-abort-abandoned-uploads-team"}
        ours = rules["wheelyard-abort-abandoned-uploads-team"]
        assert ours.rule_filter is not None and ours.rule_filter.prefix == "team/tmp/"
        assert ours.abort_incomplete_multipart_upload is not None
        assert ours.abort_incomplete_multipart_upload.days_after_initiation == 1
    finally:
        await store.close()
