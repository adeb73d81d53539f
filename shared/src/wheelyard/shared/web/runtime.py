"""What one process keeps for every app it serves: the stores, the repository directory, the
rendered-page cache and the internal-token verifier.

Built once per process. In embedded mode the gateway builds it and hands the same one to every
service's app, so a change made through the management API (`directory.forget()`) is seen by
the index, upload and proxy-cache at once; in split mode each service process builds its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wheelyard.shared.auth.internal_jwt import KeyPair, Verifier, keys_from_settings
from wheelyard.shared.backends import Backends
from wheelyard.shared.cache.memory import MemoryCache
from wheelyard.shared.domain.directory import RepositoryDirectory
from wheelyard.shared.web.pagecache import PageCache
from wheelyard.shared.web.replay import STATE_KEY, ReplayCache


@dataclass(frozen=True)
class Runtime:
    """The per-process state every app reads (see the module docstring)."""

    backends: Backends
    directory: RepositoryDirectory
    pages: PageCache
    verifier: Verifier
    #: Answers the server may replay (`wheelyard.shared.web.replay`): only where every write
    #: that could change them passes through this process (an in-process cache).
    replay: ReplayCache | None = None

    @classmethod
    def build(cls, backends: Backends, keys: KeyPair | None = None) -> Runtime:
        """A runtime over `backends`; `keys` default to the service's (public key only)."""
        keys = keys or keys_from_settings(backends.settings, signing=False)
        directory = RepositoryDirectory(backends.sessions)
        cache = backends.cache
        replay = None
        if isinstance(cache, MemoryCache):
            replay = ReplayCache(lambda: (cache.epoch, directory.generation))
        return cls(
            backends=backends,
            directory=directory,
            pages=PageCache.over(cache),
            verifier=Verifier(keys),
            replay=replay,
        )

    def server_state(self) -> dict[str, Any]:
        """What the app's lifespan hands the HTTP server (ASGI lifespan state): the replay
        cache, when there is one."""
        return {} if self.replay is None else {STATE_KEY: self.replay}
