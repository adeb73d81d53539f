"""The gateway's outermost layer: authenticate, attach the internal token, dispatch.

Every request is authenticated here once (anonymous when it carries no credentials; 401 when
its credentials do not verify, never a silent downgrade). Identity headers a client sent are
dropped, whatever their name, so nothing behind the gateway can be fooled by them; the only
identity services see is the signed internal token added here.

Any response to a request that carries credentials is marked `Cache-Control: private` here, in
one place for every service and route, so that no shared cache keeps what one caller was shown
(RFC 9111 §3.5; artifact-keeper PR #3414).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wheelyard.gateway.dispatch import Dispatcher
from wheelyard.shared.auth.authenticator import Authenticator
from wheelyard.shared.auth.internal_jwt import HEADER, Minter
from wheelyard.shared.web.problems import response_for_exception

# Headers that some proxies use to pass an identity along (oauth2-proxy, Apache, nginx
# auth_request...): a client could send them too (as in authentik CVE-2024-47070), so they
# never pass.
IDENTITY_HEADERS = frozenset(
    h.encode()
    for h in (
        HEADER,
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-preferred-username",
        "x-forwarded-groups",
        "x-user",
        "x-user-id",
        "x-username",
        "x-remote-user",
        "remote-user",
        "x-auth-request-user",
        "x-auth-request-email",
        "x-wheelyard-user",
    )
)


@dataclass
class GatewayState:
    """What the middleware needs, set on `app.state.gateway` by the lifespan."""

    authenticator: Authenticator
    minter: Minter
    dispatcher: Dispatcher


class GatewayMiddleware:
    """Authenticates, attaches the internal token and hands the request to its service."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: GatewayState | None = getattr(scope["app"].state, "gateway", None)
        if scope["type"] != "http" or state is None:
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in IDENTITY_HEADERS]
        authorization = next((v for k, v in headers if k == b"authorization"), None)
        if authorization is not None:
            send = _private_responses(send)
        try:
            principal = await state.authenticator.authenticate(
                authorization.decode("latin-1") if authorization else None,
                _client_address(scope),
            )
        except Exception as exc:
            response = response_for_exception(exc)
            if response is None:
                raise
            await response(scope, receive, send)
            return
        headers.append((HEADER.encode(), state.minter.token_for(principal).encode()))
        scope = dict(scope)
        scope["headers"] = headers
        scope["state"] = {**scope.get("state", {}), "principal": principal}
        scope, target = await state.dispatcher.route(scope)
        await (target or self.app)(scope, receive, send)


def _private_responses(send: Send) -> Send:
    """`send`, with every response start made `private` unless it is `private` or `no-store`
    already: `public` and `s-maxage` are dropped, the other directives kept, and a response
    left with none gets `private, no-store`."""

    async def send_private(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            values = [v for k, v in headers if k.lower() == b"cache-control"]
            directives = [d.strip() for v in values for d in v.split(b",") if d.strip()]
            names = {d.split(b"=", 1)[0].lower() for d in directives}
            if b"private" not in names and b"no-store" not in names:
                kept = [
                    d for d in directives if d.split(b"=", 1)[0].lower() not in _SHARED_DIRECTIVES
                ]
                control = b", ".join([b"private", *kept]) if kept else b"private, no-store"
                headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                headers.append((b"cache-control", control))
                message = {**message, "headers": headers}
        await send(message)

    return send_private


_SHARED_DIRECTIVES = frozenset({b"public", b"s-maxage"})


def _client_address(scope: Scope) -> str | None:
    # The server put the right client here: behind a proxy listed in WHEELYARD_TRUSTED_PROXIES
    # it is the right-most address of X-Forwarded-For that is not a trusted proxy (uvicorn's
    # ProxyHeadersMiddleware, configured by `wheelyard.cli`); otherwise the socket's peer.
    client = scope.get("client")
    return client[0] if client else None
