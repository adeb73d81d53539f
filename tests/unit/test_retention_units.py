"""Retention's pure parts: durations and sizes as people write them, and which version of a
proxied page is the newest (the one retention always keeps)."""

from __future__ import annotations

import pytest

from wheelyard.shared.config import (
    RepositoryConfig,
    UpstreamConfig,
    format_duration,
    parse_duration,
    parse_size,
)
from wheelyard.shared.domain import proxied
from wheelyard.shared.domain.retention import Rule, _newest_version
from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.model import SimpleFile


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90),
        ("90", 90),
        ("30d", 30 * 86400),
        ("12h", 43200),
        ("1d12h", 129600),
        ("2w", 14 * 86400),
        ("90m", 5400),
        (" 45 s ", 45),
        ("0", 0),
    ],
)
def test_durations_are_read_as_people_write_them(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "30x", "-5", "1.5d", "", "d", True, "101000w"])
def test_bad_durations_are_refused_saying_how_to_write_one(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_are_shown_in_their_largest_exact_unit() -> None:
    assert [format_duration(s) for s in (30 * 86400, 129600, 90, 0, 7 * 86400, 3600)] == [
        "30d",
        "36h",
        "90s",
        "0s",
        "1w",
        "1h",
    ]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1000, 1000),
        ("1000", 1000),
        ("500MB", 500_000_000),
        ("10 GB", 10**10),
        ("2GiB", 2 * 1024**3),
        ("1.5kb", 1500),
        ("3T", 3 * 10**12),
    ],
)
def test_sizes_are_read_with_decimal_and_binary_units(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["big", "10XB", "-1", "1e9", False, "9" * 400, 2**70])
def test_bad_sizes_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_only_proxy_repositories_have_retention() -> None:
    upstream = [UpstreamConfig(url="https://pypi.org/simple/")]
    spec = RepositoryConfig(
        name="p", type="proxy", upstreams=upstream, cache_max_bytes="1GB", cache_max_idle="30d"
    )
    assert (spec.cache_max_bytes, spec.cache_max_idle) == (10**9, 30 * 86400)
    rule = Rule.of({"cache_max_bytes": spec.cache_max_bytes, "cache_max_idle": 60})
    assert rule.max_bytes == 10**9 and rule.max_idle is not None and rule.limits
    assert not Rule.of({}).limits
    with pytest.raises(ValueError, match="only proxy"):
        RepositoryConfig(name="h", type="hosted", cache_max_bytes=5)


def _page(*files: tuple[str, bool | str]) -> proxied.PageContent:
    writer = proxied.PageWriter()
    for filename, yanked in files:
        f = SimpleFile(
            filename=filename, url="https://x/" + filename, sha256=None, size=None, yanked=yanked
        )
        writer.add(f, listed_version(filename))
    head, blob = writer.finish({})
    row = proxied.StoredPage("demo", head, None, None, 0.0, False)
    return proxied.PageContent(row, blob)


def test_the_newest_version_is_the_highest_final_release_not_yanked() -> None:
    page = _page(
        ("demo-1.0-py3-none-any.whl", False),
        ("demo-1.10.tar.gz", False),
        ("demo-2.0-py3-none-any.whl", "broken"),
        ("demo-3.0rc1-py3-none-any.whl", False),
    )
    assert _newest_version(page) == "1.10"
    assert _newest_version(_page(("demo-3.0rc1.tar.gz", False), ("demo-2.0.tar.gz", True))) == (
        "3.0rc1"
    )
    assert _newest_version(_page(("demo-2.0.tar.gz", True), ("demo-1.0.tar.gz", True))) == "2.0"
    assert _newest_version(_page()) is None
