"""Every in-process memory of computed values is bounded in bytes, not entries: what is kept
can be any size (a user's permissions, an upstream's version strings, a repository's
upstream settings), so a bound in entries bounds nothing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from wheelyard.shared.auth import authenticator as authenticator_module
from wheelyard.shared.auth import internal_jwt, throttle
from wheelyard.shared.auth.authenticator import Authenticator
from wheelyard.shared.auth.internal_jwt import Minter, Verifier, generate_key_files
from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.cache import MemoryCache, open_cache
from wheelyard.shared.config import Settings
from wheelyard.shared.domain import directory as directory_module
from wheelyard.shared.domain.directory import RepositoryDirectory
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.memo import ENTRY_OVERHEAD, ByteLRU, estimate_size
from wheelyard.shared.packaging import pypi_json

MiB = 1024 * 1024


def test_a_byte_lru_keeps_its_budget_and_drops_the_least_recently_used() -> None:
    lru: ByteLRU[str, str] = ByteLRU(10_000, size=lambda key, value: len(value))
    for i in range(100):
        lru.put(f"k{i}", "x" * 1000)
        assert lru.bytes <= 10_000
    assert len(lru) == 10_000 // (1000 + ENTRY_OVERHEAD)
    assert lru.get("k99") is not None and lru.get("k0") is None
    newest = [f"k{i}" for i in range(100) if f"k{i}" in lru]
    lru.get(newest[0])  # now the most recently used: it survives the next eviction
    lru.put("another", "y" * 1000)
    assert newest[0] in lru and newest[1] not in lru


def test_a_value_larger_than_the_budget_is_not_kept() -> None:
    lru: ByteLRU[str, str] = ByteLRU(1000)
    lru.put("small", "x")
    lru.put("big", "x" * 5000)
    assert "big" not in lru and lru.get("small") == "x"
    lru.put("small", "x" * 5000)  # replaced by a value too large: forgotten, not kept stale
    assert "small" not in lru


def test_the_size_estimate_follows_what_an_object_holds() -> None:
    @dataclasses.dataclass(frozen=True)
    class Holder:
        name: str
        parts: tuple[str, ...]
        extra: dict[str, Any]

    small = Holder("a", ("b",), {})
    large = Holder("a", tuple("b" * 10_000 for _ in range(10)), {"k": "v" * 50_000})
    assert estimate_size(small) < 2_000
    assert estimate_size(large) > 150_000


def _wide_principal(i: int) -> Principal:
    # A user with access to many repositories: their principal (and token) is large.
    permissions = tuple((f"default/repository-{j:04d}-{i}", "read") for j in range(300))
    return Principal(username=f"user{i}", user_id=i, permissions=permissions)


def test_minted_and_verified_tokens_stay_within_their_byte_budget(tmp_path: Path) -> None:
    keys = generate_key_files(tmp_path)
    minter = Minter(keys, max_bytes=MiB)
    verifier = Verifier(keys, max_bytes=MiB)
    for i in range(200):
        principal = _wide_principal(i)
        assert verifier.principal(minter.token_for(principal)) == principal
    assert 0 < minter._minted.bytes <= MiB
    assert 0 < verifier._verified.bytes <= MiB
    assert len(verifier._verified) < 200  # some were dropped to keep the budget
    assert Minter(keys)._minted.max_bytes == internal_jwt.REMEMBERED_BYTES


def test_decoded_credential_records_stay_within_their_byte_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(authenticator_module, "DECODED_RECORDS_BYTES", MiB)
    keys = generate_key_files(tmp_path)
    authenticator = Authenticator(None, MemoryCache(), keys)
    for i in range(100):
        raw = json.dumps({"user": i, "permissions": ["x" * 100] * 200}).encode()
        assert authenticator._decoded(raw, lambda data: data)["user"] == i
    assert 0 < authenticator._records.bytes <= MiB
    assert len(authenticator._records) < 100


def test_parsed_versions_stay_within_their_byte_budget() -> None:
    pypi_json._parsed.cache_clear()  # type: ignore[attr-defined]
    for i in range(2_000):
        pypi_json.version_order_key(f"{i}.0.dev{'0' * 2_000}")
    assert 0 < pypi_json._parsed.cache_bytes() <= pypi_json.PARSED_VERSIONS_BYTES  # type: ignore[attr-defined]


def test_client_buckets_stay_within_their_byte_budget() -> None:
    throttle.client_bucket.cache_clear()  # type: ignore[attr-defined]
    for i in range(1_000):
        assert throttle.client_bucket(f"not-an-address-{i}-{'x' * 2_000}").startswith("not")
    assert 0 < throttle.client_bucket.cache_bytes() <= throttle.BUCKETS_BYTES  # type: ignore[attr-defined]


async def test_the_repository_directory_stays_within_its_byte_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(directory_module, "DIRECTORY_BYTES", MiB)

    class Session:
        async def __aenter__(self) -> Session:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

    async def find_repository(session: Any, storage: str, name: str) -> str:
        return name

    async def view_of(session: Any, repo: str, storage: str) -> RepositoryView:
        # What a proxy's settings can weigh: a CA bundle of a few tens of kilobytes.
        return RepositoryView(
            id=1,
            storage=storage,
            name=repo,
            type="proxy",
            visibility="public",
            ttl=None,
            settings={"ca_bundle": "-----BEGIN CERTIFICATE-----" + "A" * 40_000},
        )

    monkeypatch.setattr(directory_module, "find_repository", find_repository)
    monkeypatch.setattr(directory_module, "view_of", view_of)
    directory = RepositoryDirectory(Session)  # type: ignore[arg-type]
    for i in range(100):
        view = await directory.get("default", f"repo{i}")
        assert view is not None and view.name == f"repo{i}"
    assert 0 < directory._known.bytes <= MiB
    assert len(directory._known) < 100


def test_the_memory_cache_takes_its_budget_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().memory_cache_bytes == 64 * MiB
    monkeypatch.setenv("WHEELYARD_MEMORY_CACHE_BYTES", str(2 * MiB))
    settings = Settings()
    cache = open_cache("memory://", memory_bytes=settings.memory_cache_bytes)
    assert isinstance(cache, MemoryCache)
    assert cache._max_bytes == 2 * MiB
    monkeypatch.setenv("WHEELYARD_MEMORY_CACHE_BYTES", "1000")
    with pytest.raises(ValueError, match="memory_cache_bytes"):
        Settings()
