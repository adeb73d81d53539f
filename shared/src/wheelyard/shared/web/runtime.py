"""What one process keeps for every app it serves: the stores, the repository directory, the
rendered-page cache and the internal-token verifier.

Built once per process. In embedded mode the gateway builds it and hands the same one to every
service's app, so a change made through the management API (`directory.forget()`) is seen by
the index, upload and proxy-cache at once; in split mode each service process builds its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from wheelyard.shared.auth.internal_jwt import KeyPair, Verifier, keys_from_settings
from wheelyard.shared.backends import Backends
from wheelyard.shared.domain.directory import RepositoryDirectory
from wheelyard.shared.web.pagecache import PageCache


@dataclass(frozen=True)
class Runtime:
    """The per-process state every app reads (see the module docstring)."""

    backends: Backends
    directory: RepositoryDirectory
    pages: PageCache
    verifier: Verifier

    @classmethod
    def build(cls, backends: Backends, keys: KeyPair | None = None) -> Runtime:
        """A runtime over `backends`; `keys` default to the service's (public key only)."""
        keys = keys or keys_from_settings(backends.settings, signing=False)
        return cls(
            backends=backends,
            directory=RepositoryDirectory(backends.sessions),
            pages=PageCache.over(backends.cache),
            verifier=Verifier(keys),
        )
