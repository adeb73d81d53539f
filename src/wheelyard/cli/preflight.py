"""Checks made before a server does any start-up work (migrations, bootstrap, key loading).

Each failure is one line naming what is wrong and where (a `ConfigurationError`, which the
CLI prints as `wheelyard: <message>` with exit status 2), instead of a traceback from deep in
a migration, or a port that turns out to be taken only after every start-up step has run.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from wheelyard.shared.config import Settings
from wheelyard.shared.errors import ConfigurationError


def check_data_dir(settings: Settings) -> None:
    """The data directory (and an on-disk blob directory) exists or can be created, and a file
    can be written in it: the embedded database, blobs and the admin password live there."""
    directories = [settings.data_dir]
    blob = urlsplit(settings.effective_blob_url)
    if blob.scheme == "file":
        directories.append(Path(unquote(blob.path)))
    for directory in directories:
        _check_writable(directory.resolve())


def _check_writable(directory: Path) -> None:
    what = f"the data directory {directory} cannot be written"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A real write, not os.access(): root passes access() on a read-only mount.
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=directory)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigurationError(
            f"{what} ({reason}); choose another with WHEELYARD_DATA_DIR"
        ) from exc


def check_port(host: str, port: int) -> None:
    """`host:port` can be listened on now (the server binds only after its start-up work, so a
    busy port would otherwise be found last). The probe socket is closed again at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: unknown host ({exc.strerror}); check --host"
        ) from exc
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn does: a port in TIME_WAIT from a previous run is free to use.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = "the port is already in use"
            else:
                reason = exc.strerror or type(exc).__name__
            raise ConfigurationError(
                f"cannot listen on {host}:{port}: {reason}; choose another with --port "
                "(or WHEELYARD_PORT)"
            ) from exc
