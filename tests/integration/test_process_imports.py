"""A server process imports only what it serves with: after an embedded start on the default
backends (SQLite, disk, memory cache) none of the migration tool, the optional backends' SDKs,
the README renderer or the operator commands' YAML writer is loaded."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

# Run as a separate interpreter: the test process itself has imported all of these.
_START = """
import asyncio, json, sys
import uvicorn
import wheelyard.cli.main
from wheelyard.gateway.embedded import create_embedded_app
from wheelyard.shared.config import load_settings

app = create_embedded_app(load_settings())

async def main():
    async with app.router.lifespan_context(app):
        pass

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""

NOT_IN_A_DEFAULT_SERVER = (
    "alembic",
    "mako",
    "redis",
    "minio",
    "readme_renderer",
    "docutils",
    "yaml",
)


def test_an_embedded_server_does_not_keep_what_it_does_not_use(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHEELYARD_")}
    env |= {
        "WHEELYARD_DATA_DIR": str(tmp_path / "data"),
        "WHEELYARD_ADMIN_PASSWORD": "pw-0123456789",
    }
    done = subprocess.run(
        [sys.executable, "-c", _START], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "wheelyard.proxy_cache.app" in modules  # it did start the whole registry
    loaded = sorted(m for m in modules if m.split(".")[0] in NOT_IN_A_DEFAULT_SERVER)
    assert loaded == []
    # The schema was migrated (by a child process), and the bootstrap that needs it ran.
    database = sqlite3.connect(tmp_path / "data" / "wheelyard.db")
    try:
        assert database.execute("SELECT username FROM users").fetchall() == [("admin",)]
    finally:
        database.close()
