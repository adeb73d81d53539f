"""Answering a repeated anonymous page request from the bytes of the last answer, in the
HTTP protocol, before any ASGI layer runs (docs/adr/0008-replayed-pages.md).

A cached simple page still cost about 180 us of CPU, almost all of it in the Python server
stack around the page cache: uvicorn's request cycle and task, six ASGI layers, header
checks, the access line (docs/adr/0006-hot-file-path.md). The answer to a GET that carries no
credentials is the same bytes every time until something it depends on changes, so the
protocol keeps those bytes and writes them again, with a fresh `Date` and request id, and
still counts the request in the metrics and the access log.

Which answers may be replayed is the application's decision, never the protocol's:

- The protocol offers (`ReplayOffer` in the scope, under `SCOPE_KEY`) only for a GET on
  HTTP/1.1 whose headers are all in `REPLAY_HEADERS` (no Authorization, Cookie, conditional,
  Range or forwarding header); the offer's key is the request target with Host, Accept and
  Accept-Encoding.
- The application accepts (`accept`) only a 200 answer that does not depend on who asks: a
  page of a public repository, for a Host the operator allows (`pages.page_response`).
- The answer is replayed while the process's change token is the one read when the request
  began (`ReplayCache.token`: in embedded mode every write to the in-process cache, where
  writers announce serials, and every change of the repository directory moves it), and for
  at most `MAX_AGE` seconds, which bounds what no token sees: a page that ages past its
  upstream's freshness, another process's change the directory reloads every two seconds.

A process whose cache is shared with other processes (split mode, Redis) cannot see their
writes in a token, so it has no `ReplayCache` and nothing is replayed there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

#: The lifespan state key under which the application hands the server its `ReplayCache`.
STATE_KEY = "wheelyard.replay"
#: The scope key of a request's `ReplayOffer`.
SCOPE_KEY = "wheelyard.replay"
#: The request headers a replayable request may carry (names, lower case); any other header
#: (credentials, cookies, conditionals, ranges, forwarding) sends the request down the full path.
REPLAY_HEADERS = frozenset(
    {
        b"host",
        b"user-agent",
        b"accept",
        b"accept-encoding",
        b"accept-language",
        b"connection",
        b"cache-control",
        b"pragma",
    }
)
#: Longest a kept answer is replayed, whatever the token says (module docstring).
MAX_AGE = 1.0
#: Bytes of kept answers (heads and bodies) per process.
MAX_BYTES = 8 * 1024 * 1024
#: Larger bodies are not kept (pages of this size cost their own transfer, not the stack).
MAX_BODY = 64 * 1024

Key = tuple[bytes, bytes, bytes, bytes]
#: Counts one replay of a kept answer (metrics, access line): called with the client's address
#: and the time taken, it returns the request id the answer carries.
Counter = Callable[[str | None, float], str]


class ReplayObserver(Protocol):
    """What counts replayed answers: the layer that counts every other one (`web.observe`)."""

    def replay_counter(self, *, path: str, route: str, sent: int) -> Counter:
        """The `Counter` of a 200 GET of `path` answered on `route` with `sent` body bytes."""
        ...


@dataclass(slots=True)
class ReplayOffer:
    """A request the protocol could replay later: filled in by the layers that answer it."""

    key: Key
    token: Hashable
    accepted: bool = False
    path: str = ""
    route: str | None = None
    observer: ReplayObserver | None = None


@dataclass(frozen=True, slots=True)
class Replayable:
    """A kept answer: `head` (status line and the headers that do not change per response,
    each ending in CRLF, without the blank line), `body`, and what counts each replay.

    A file sent by path (ASGI path-send) is kept as its `path` and the `headers` of its
    response start message instead (`head` and `body` empty): the server sends the file again.
    """

    head: bytes
    body: bytes
    token: Hashable
    expires: float
    count: Counter
    path: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()


def accept(scope: MutableMapping[str, Any]) -> None:
    """Let the server replay this request's answer (see the module docstring for when)."""
    offer: ReplayOffer | None = scope.get(SCOPE_KEY)
    if offer is not None:
        offer.accepted = True


class ReplayCache:
    """The kept answers of one process, bounded in bytes; `token()` is the process's change
    token (module docstring)."""

    def __init__(self, token: Callable[[], Hashable], *, max_bytes: int = MAX_BYTES) -> None:
        self.token = token
        self.max_bytes = max_bytes
        # A plain dict, oldest first out: a look-up is on every replayed request, and kept
        # answers live a second, so recency matters less than the look-up's cost.
        self._kept: dict[Key, Replayable] = {}
        self._bytes = 0

    def offer(self, key: Key) -> ReplayOffer:
        """An offer for a request with `key`, beginning now."""
        return ReplayOffer(key, self.token())

    def find(self, key: Key) -> Replayable | None:
        """The answer kept for `key`, if it may still be replayed."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        if kept.expires < time.monotonic() or kept.token != self.token():
            self._drop(key)
            return None
        return kept

    def keep(self, offer: ReplayOffer, head: bytes, body: bytes) -> None:
        """Keep the answer to an accepted `offer` (ignored unless it is replayable)."""
        if len(body) <= MAX_BODY:
            self._keep(offer, len(body), head, body)

    def keep_file(
        self, offer: ReplayOffer, headers: tuple[tuple[bytes, bytes], ...], path: str, size: int
    ) -> None:
        """Keep the answer to an accepted `offer` that sent the `size` bytes of the file at
        `path` with `headers` (its start message's, less what is fresh per answer)."""
        self._keep(offer, size, b"", b"", path, headers)

    def _keep(
        self,
        offer: ReplayOffer,
        sent: int,
        head: bytes,
        body: bytes,
        path: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        if (
            not offer.accepted
            or offer.observer is None
            or offer.route is None
            or offer.token != self.token()  # something changed while it was answered
        ):
            return
        kept = Replayable(
            head=head,
            body=body,
            token=offer.token,
            expires=time.monotonic() + MAX_AGE,
            count=offer.observer.replay_counter(path=offer.path, route=offer.route, sent=sent),
            path=path,
            headers=headers,
        )
        cost = _cost(offer.key, kept)
        if cost > self.max_bytes:
            return
        self._drop(offer.key)
        while self._kept and self._bytes + cost > self.max_bytes:
            self._drop(next(iter(self._kept)))
        self._kept[offer.key] = kept
        self._bytes += cost

    @property
    def bytes(self) -> int:
        """The estimated bytes of the kept answers."""
        return self._bytes

    def _drop(self, key: Key) -> None:
        kept = self._kept.pop(key, None)
        if kept is not None:
            self._bytes -= _cost(key, kept)


def _cost(key: Key, kept: Replayable) -> int:
    """What a kept answer costs in memory (estimated; the body is often shared)."""
    headers = sum(len(name) + len(value) for name, value in kept.headers)
    return (
        sum(map(len, key)) + len(kept.head) + len(kept.body) + len(kept.path or "") + headers + 300
    )
