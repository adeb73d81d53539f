"""The rules of kept answers (wheelyard.shared.web.replay) and their prepared access lines."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from wheelyard.shared.logs import AccessLog
from wheelyard.shared.web import replay
from wheelyard.shared.web.replay import ReplayCache, ReplayOffer

KEY: replay.Key = (b"/repositories/s/r/simple/p/", b"h", b"application/json", b"gzip")


class Observer:
    def __init__(self) -> None:
        self.counted: list[tuple[str | None, float]] = []

    def replay_counter(self, *, path: str, route: str, sent: int) -> replay.Counter:
        def count(client: str | None, elapsed: float) -> str:
            self.counted.append((client, elapsed))
            return f"id-{len(self.counted)}"

        return count


class Token:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


def _accepted(cache: ReplayCache, key: replay.Key = KEY) -> ReplayOffer:
    offer = cache.offer(key)
    scope: dict[str, Any] = {replay.SCOPE_KEY: offer}
    replay.accept(scope)
    offer.observer, offer.route, offer.path = Observer(), "simple_project", key[0].decode()
    return offer


def test_an_accepted_answer_is_kept_while_the_token_stays() -> None:
    token = Token()
    cache = ReplayCache(token)
    cache.keep(_accepted(cache), b"HTTP/1.1 200 OK\r\n", b"body")
    kept = cache.find(KEY)
    assert kept is not None and kept.body == b"body" and kept.head == b"HTTP/1.1 200 OK\r\n"
    assert kept.count("127.0.0.1", 0.0) == "id-1"

    token.value += 1  # a write: nothing read before it may be replayed
    assert cache.find(KEY) is None
    assert cache.find(KEY) is None  # and it stays gone


def test_an_answer_is_not_kept_when_something_changed_while_it_was_made() -> None:
    token = Token()
    cache = ReplayCache(token)
    offer = _accepted(cache)
    token.value += 1
    cache.keep(offer, b"HTTP/1.1 200 OK\r\n", b"body")
    assert cache.find(KEY) is None


def test_only_accepted_and_observed_answers_are_kept() -> None:
    cache = ReplayCache(Token())
    offer = cache.offer(KEY)  # the application never accepted it
    offer.observer, offer.route = Observer(), "simple_project"
    cache.keep(offer, b"HTTP/1.1 200 OK\r\n", b"body")
    assert cache.find(KEY) is None

    unobserved = cache.offer(KEY)
    unobserved.accepted = True  # accepted, but no layer counts it
    cache.keep(unobserved, b"HTTP/1.1 200 OK\r\n", b"body")
    assert cache.find(KEY) is None

    cache.keep(_accepted(cache), b"HTTP/1.1 200 OK\r\n", b"x" * (replay.MAX_BODY + 1))
    assert cache.find(KEY) is None


def test_a_file_answer_is_kept_as_its_path_and_headers_whatever_its_size() -> None:
    token = Token()
    cache = ReplayCache(token)
    headers = ((b"content-length", b"123456789"), (b"etag", b'"abc"'))
    cache.keep_file(_accepted(cache), headers, "/blobs/sha256/ab/cd/abcd", 123_456_789)
    kept = cache.find(KEY)
    assert kept is not None
    assert (kept.path, kept.headers, kept.head, kept.body) == (
        "/blobs/sha256/ab/cd/abcd",
        headers,
        b"",
        b"",
    )
    assert 0 < cache.bytes < 1024  # the path and headers, never the file's bytes
    token.value += 1  # a deletion, for one, moves the token
    assert cache.find(KEY) is None

    unaccepted = cache.offer(KEY)
    unaccepted.observer, unaccepted.route = Observer(), "download"
    cache.keep_file(unaccepted, headers, "/blobs/x", 10)
    assert cache.find(KEY) is None


def test_accept_without_an_offer_does_nothing() -> None:
    scope: dict[str, Any] = {}
    replay.accept(scope)
    assert scope == {}


def test_a_kept_answer_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ReplayCache(Token())
    now = [1000.0]
    monkeypatch.setattr(replay.time, "monotonic", lambda: now[0])
    cache.keep(_accepted(cache), b"HTTP/1.1 200 OK\r\n", b"body")
    now[0] += replay.MAX_AGE / 2
    assert cache.find(KEY) is not None
    now[0] += replay.MAX_AGE
    assert cache.find(KEY) is None


def test_kept_answers_stay_within_their_byte_budget() -> None:
    cache = ReplayCache(Token(), max_bytes=64 * 1024)
    keys = [(f"/p{i}/".encode(), b"h", b"a", b"e") for i in range(40)]
    for key in keys:
        cache.keep(_accepted(cache, key), b"HTTP/1.1 200 OK\r\n", b"x" * 4096)
    kept = [key for key in keys if cache.find(key) is not None]
    assert 0 < len(kept) * 4096 <= 64 * 1024
    assert cache.find(keys[-1]) is not None  # the newest stay


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_prepared_access_line_is_the_line_write_would_write(fmt: str) -> None:
    out = io.StringIO()
    log = AccessLog(fmt, out)  # type: ignore[arg-type]
    fields = {
        "request_id": "abc123",
        "service": "embedded",
        "method": "GET",
        "path": '/r/simple/p\u00e9"/',
        "route": "simple_project",
        "status": 200,
        "duration_ms": 0.07,
        "bytes_in": 0,
        "bytes_out": 501,
        "client": "127.0.0.1",
    }
    log.write("GET /p 200", fields)
    line = log.prepared(
        "GET /p 200",
        dict(fields, request_id="", duration_ms=0.0, client=""),
        ("request_id", "duration_ms", "client"),
    )
    line("abc123", 0.07, "127.0.0.1")
    line("abc124", 1.5, None)
    log.flush()
    written, prepared, without_client = out.getvalue().splitlines()
    if fmt == "json":
        one, two, three = (json.loads(x) for x in (written, prepared, without_client))
        one.pop("time"), two.pop("time"), three.pop("time")
        assert one == two
        assert list(one) == list(two)  # the same order of keys
        assert three == {**{k: v for k, v in one.items() if k != "client"}} | {
            "request_id": "abc124",
            "duration_ms": 1.5,
        }
    else:
        assert written == prepared
        assert without_client == written.replace("abc123", "abc124").replace(
            "duration_ms=0.07", "duration_ms=1.5"
        ).replace(" client=127.0.0.1", "")


def test_a_prepared_line_needs_its_variable_fields_in_order() -> None:
    log = AccessLog("json", io.StringIO())
    with pytest.raises(ValueError, match="variable fields"):
        log.prepared("m", {"a": 1, "b": 2}, ("b", "a"))
