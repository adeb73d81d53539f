"""The start-up banner of `wheelyard serve`: where to point a browser and the clients.

Printed to standard error once the server has finished starting (after migrations and the
first-start bootstrap, which prints a generated admin password itself), so a person who just
ran `make run` sees what to open, where the admin password is, and the three commands they
most likely want next. docs/clients.md has every other client.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from wheelyard.shared.config import Settings

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def base_url(settings: Settings, host: str, port: int) -> str:
    """The URL a person on this machine opens: the configured public URL, else the listening
    address (a wildcard address shown as the loopback one, which it includes)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def banner(settings: Settings, url: str) -> str:
    """The banner's text for a server answering at `url` (no trailing slash)."""
    if settings.admin_password:
        where = "the value of WHEELYARD_ADMIN_PASSWORD"
    else:
        where = str((settings.data_dir / "admin-password").resolve())
    return "\n".join(
        (
            "",
            f"  Wheelyard is ready: open {url}/ui/ in a browser",
            f"  sign in as 'admin'; the password is in {where}",
            "",
            f"    pip install --index-url {url}/simple/ PACKAGE",
            f"    uv pip install --index-url {url}/simple/ PACKAGE",
            f"    uv publish --publish-url {url}/repositories/default/local/ -u admin dist/*",
            "",
            "  every client (poetry, pdm, hatch, twine...): docs/clients.md",
            "",
        )
    )


class StartupBanner:
    """ASGI wrapper: prints `text` when the wrapped app reports its start-up complete."""

    def __init__(self, app: ASGIApp, text: str) -> None:
        self.app = app
        self.text = text

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def announce(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                print(self.text, file=sys.stderr, flush=True)

        await self.app(scope, receive, announce)
