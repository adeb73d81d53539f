"""Administering through the web interface: repositories, permissions, users, the audit log,
cached proxy pages and the upstream's state; and the API documentation it links to."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from wheelyard.shared import routes
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.proxy_env import ADMIN, ProxyEnv
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import RunningServer, unique_project
from wheelyard.testing.web import WebClient


def _admin(server: RunningServer) -> WebClient:
    client = WebClient(server.url)
    client.sign_in(*server.admin)
    return client


def _repository(server: RunningServer, name: str) -> httpx.Response:
    return http.get(f"{server.url}/api/v1/repositories/default/{name}", auth=server.admin)


def test_repositories_are_created_changed_shared_and_deleted(
    wheelyard_server: RunningServer,
) -> None:
    api = ManagementApi.of(wheelyard_server)
    member = unique_name("member")
    name = unique_name("web-repo")
    user, password = api.user("granted")
    with _admin(wheelyard_server) as admin:
        token = admin.page_token("/ui/admin/repositories/new")
        made = admin.post(
            "/ui/admin/repositories",
            {"storage": "default", "name": member, "type": "hosted", "visibility": "private"},
            token=token,
        )
        assert made.status_code == 303, made.text
        assert made.headers["location"] == f"/ui/repositories/default/{member}/"
        group = admin.post(
            "/ui/admin/repositories",
            {
                "storage": "default",
                "name": name,
                "type": "group",
                "visibility": "public",
                "members": f"default/{member}\ndefault/pypi",
            },
            token=token,
        )
        assert group.status_code == 303, group.text
        assert _repository(wheelyard_server, name).json()["members"] == [
            f"default/{member}",
            "default/pypi",
        ]
        # A mistake is shown on the form, with what was typed.
        again = admin.post("/ui/admin/repositories", {"name": name, "type": "hosted"}, token=token)
        assert again.status_code == 200 and "already exists" in again.text
        assert f'value="{name}"' in again.text
        bad = admin.post(
            "/ui/admin/repositories",
            {"name": unique_name("proxy"), "type": "proxy", "upstreams": ""},
            token=token,
        )
        assert "needs at least one upstream" in bad.text
        # Change: the group becomes private and loses a member.
        changed = admin.post(
            f"/ui/repositories/default/{name}/settings",
            {"type": "group", "visibility": "private", "members": f"default/{member}"},
            token=token,
        )
        assert changed.status_code == 303, changed.text
        view = _repository(wheelyard_server, name).json()
        assert view["visibility"] == "private" and view["members"] == [f"default/{member}"]
        # Share it with a user, who then sees it.
        granted = admin.post(
            f"/ui/repositories/default/{name}/permissions",
            {"username": user, "level": "read"},
            token=token,
        )
        assert granted.status_code == 303
        settings = admin.get(f"/ui/repositories/default/{name}/settings")
        assert user in settings.text
        with WebClient(wheelyard_server.url) as reader:
            reader.sign_in(user, password)
            assert reader.get(f"/ui/repositories/default/{name}/").status_code == 200
            # ... which does not make them its administrator.
            assert reader.get(f"/ui/repositories/default/{name}/settings").status_code == 403
        removed = admin.post(
            f"/ui/repositories/default/{name}/permissions",
            {"username": user, "level": "none"},
            token=token,
        )
        assert removed.status_code == 303
        deleted = admin.post(f"/ui/repositories/default/{name}/delete", {}, token=token)
        assert deleted.status_code == 303
        assert _repository(wheelyard_server, name).status_code == 404
        audit = admin.get(f"/ui/admin/audit?target=default/{name}")
        for action in (
            "repository.create",
            "repository.update",
            "permission.set",
            "permission.remove",
            "repository.delete",
        ):
            assert f"<td>{action}</td>" in audit.text, action


def test_a_proxys_retention_is_set_and_shown_on_its_settings_form(
    wheelyard_server: RunningServer,
) -> None:
    name = unique_name("retained")
    with _admin(wheelyard_server) as admin:
        token = admin.page_token("/ui/admin/repositories/new")
        made = admin.post(
            "/ui/admin/repositories",
            {
                "storage": "default",
                "name": name,
                "type": "proxy",
                "visibility": "public",
                # Never asked: a public address, so the SSRF guard lets it through.
                "upstreams": "http://1.1.1.1/simple/",
                "cache_max_bytes": "5GB",
                "cache_max_idle": "36h",
            },
            token=token,
        )
        assert made.status_code == 303, made.text
        view = _repository(wheelyard_server, name).json()
        assert view["cache_max_bytes"] == 5_000_000_000 and view["cache_max_idle"] == "36h"
        form = admin.get(f"/ui/repositories/default/{name}/settings")
        assert 'value="5000000000"' in form.text and 'value="36h"' in form.text
        bad = admin.post(
            f"/ui/repositories/default/{name}/settings",
            {
                "type": "proxy",
                "visibility": "public",
                "upstreams": "http://1.1.1.1/simple/",
                "cache_max_idle": "soon",
            },
            token=token,
        )
        assert bad.status_code == 400 and "is not a duration" in bad.text
        assert _repository(wheelyard_server, name).json()["cache_max_idle"] == "36h"
        cleared = admin.post(
            f"/ui/repositories/default/{name}/settings",
            {"type": "proxy", "visibility": "public", "upstreams": "http://1.1.1.1/simple/"},
            token=token,
        )
        assert cleared.status_code == 303, cleared.text
        view = _repository(wheelyard_server, name).json()
        assert view["cache_max_bytes"] is None and view["cache_max_idle"] is None


def test_a_repository_holding_files_is_deleted_only_when_confirmed(
    wheelyard_server: RunningServer, tmp_path: object
) -> None:
    api = ManagementApi.of(wheelyard_server)
    repo = api.repository("public")
    name = repo.split("/")[1]
    project = unique_project("kept")
    wheel = f"{project.replace('-', '_')}-1.0-py3-none-any.whl"
    from wheelyard.testing.dist_factory import make_wheel

    path = make_wheel(tmp_path, project, "1.0")  # type: ignore[arg-type]
    assert (
        http.put(
            f"{wheelyard_server.url}/repositories/{repo}/{project}/1.0/{wheel}",
            content=path.read_bytes(),
            auth=wheelyard_server.admin,
        ).status_code
        == 201
    )
    with _admin(wheelyard_server) as admin:
        token = admin.page_token("/ui/admin/")
        refused = admin.post(f"/ui/repositories/{repo}/delete", {}, token=token)
        assert refused.status_code == 409 and "holds uploaded files" in refused.text
        assert _repository(wheelyard_server, name).status_code == 200
        forced = admin.post(f"/ui/repositories/{repo}/delete", {"force": "yes"}, token=token)
        assert forced.status_code == 303
        assert _repository(wheelyard_server, name).status_code == 404


def test_users_are_created_changed_and_deleted(wheelyard_server: RunningServer) -> None:
    name = unique_name("person")
    with _admin(wheelyard_server) as admin:
        token = admin.page_token("/ui/admin/users")
        made = admin.post(
            "/ui/admin/users", {"username": name, "password": "long-enough-1"}, token=token
        )
        assert made.status_code == 303
        short = admin.post(
            "/ui/admin/users", {"username": unique_name("p"), "password": "short"}, token=token
        )
        assert short.status_code == 400 and "at least 8 characters" in short.text
        with WebClient(wheelyard_server.url) as person:
            person.sign_in(name, "long-enough-1")
            assert person.get("/ui/admin/").status_code == 403
            promoted = admin.post(
                f"/ui/admin/users/{name}", {"is_admin": "yes", "is_active": "yes"}, token=token
            )
            assert promoted.status_code == 303
            assert person.get("/ui/admin/").status_code == 200  # from the next request on
            deactivated = admin.post(f"/ui/admin/users/{name}", {"is_admin": "yes"}, token=token)
            assert deactivated.status_code == 303
            assert person.get("/ui/admin/").status_code == 303  # signed out
        # Nobody locks themselves out by accident.
        own = admin.post("/ui/admin/users/admin", {"is_active": "yes"}, token=token)
        assert own.status_code == 409
        assert admin.post("/ui/admin/users/admin/delete", {}, token=token).status_code == 409
        gone = admin.post(f"/ui/admin/users/{name}/delete", {}, token=token)
        assert gone.status_code == 303
        assert admin.get(f"/ui/admin/users/{name}").status_code == 404
        log = admin.get(f"/ui/admin/audit?actor=admin&target={name}")
        assert log.text.count("<td>user.update</td>") == 2
        assert "<td>user.delete</td>" in log.text


def test_tokens_are_revoked_from_the_tokens_page(wheelyard_server: RunningServer) -> None:
    api = ManagementApi.of(wheelyard_server)
    user = api.user("revoker")
    with WebClient(wheelyard_server.url) as client:
        client.sign_in(*user)
        token = client.page_token()
        made = client.post(
            "/ui/tokens",
            {
                "name": "ci",
                "scope": "read",
                "repositories": "default/local",
                "expires": "2999-01-01",
            },
            token=token,
        )
        secret = re.search(r"wy_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}", made.text)
        assert secret
        simple = f"{wheelyard_server.url}/repositories/default/local/simple/"
        assert http.get(simple, auth=("__token__", secret.group(0))).status_code == 200
        listed = client.get("/ui/tokens")
        assert secret.group(0) not in listed.text  # shown once, never listed
        token_id = re.search(r'action="/ui/tokens/(\d+)/revoke"', listed.text)
        assert token_id
        revoked = client.post(f"/ui/tokens/{token_id.group(1)}/revoke", {}, token=token)
        assert revoked.status_code == 303
        assert http.get(simple, auth=("__token__", secret.group(0))).status_code == 401
        past = client.post(
            "/ui/tokens",
            {
                "name": "old",
                "scope": "read",
                "repositories": "default/local",
                "expires": "2001-01-01",
            },
            token=token,
        )
        assert past.status_code == 400 and "in the future" in past.text


def test_cached_proxy_pages_and_the_upstream_state_are_shown_and_refreshed(
    proxy_env: ProxyEnv,
) -> None:
    project = proxy_env.upstream.add_project(unique_project("shown"), ("1.0", "2.0"))
    assert proxy_env.page("multi", project.normalized).status_code == 200
    server = RunningServer(proxy_env.server.process, proxy_env.url, ADMIN)
    with _admin(server) as admin:
        page = admin.get("/ui/repositories/default/multi/")
        assert project.normalized in page.text and "fresh" in page.text
        project_page = admin.get(f"/ui/repositories/default/multi/projects/{project.normalized}/")
        assert project_page.status_code == 200
        assert "2.0" in project_page.text and "not yet" in project_page.text  # not downloaded
        hits = proxy_env.upstream.page_hits(project.normalized)
        token = admin.page_token("/ui/repositories/default/multi/")
        refreshed = admin.post(
            f"/ui/repositories/default/multi/cache/{project.normalized}/refresh", {}, token=token
        )
        assert refreshed.status_code == 303
        assert proxy_env.page("multi", project.normalized).status_code == 200
        assert proxy_env.upstream.page_hits(project.normalized) > hits  # fetched again, in full
        # A failing upstream: the breaker opens after three failures and the page says so
        # (`health` is this test's own repository: its circuit stays open for 30 s).
        proxy_env.upstream.fail(500)
        for _ in range(3):
            proxy_env.page("health", unique_project("down"))
        state = admin.get("/ui/repositories/default/health/")
        assert "circuit open" in state.text and "answered 500" in state.text


def test_a_repository_admin_changes_it_without_learning_what_they_may_not_read(
    tmp_path: Path,
) -> None:
    """Through the API's own `update`: the settings form of a repository's admin (not an
    administrator) names no private repository they may not read, lists no user and shows no
    upstream credential; saving it keeps the group's hidden member and the credentials."""
    password = "ui-admin-password-0123"
    env = {"WHEELYARD_ADMIN_PASSWORD": password, "WHEELYARD_ALLOW_PRIVATE_UPSTREAMS": "true"}
    with ServerProcess(tmp_path / "data", env) as process:
        server = RunningServer(process, process.url, ("admin", password))
        api = ManagementApi.of(server)
        hidden, shown = api.repository("private", prefix="hidden"), api.repository("public")
        group, mirror = unique_name("team"), unique_name("mirror")
        for body in (
            {"name": group, "type": "group", "members": [hidden, shown]},
            {
                "name": mirror,
                "type": "proxy",
                "upstreams": [{"url": "http://mirror-user:mirror-secret@127.0.0.1:9/simple/"}],
            },
        ):
            made = http.post(f"{api.api}/repositories", json=body, auth=server.admin)
            assert made.status_code == 201, made.text
        user, user_password = api.user("team-admin")
        for name in (group, mirror):
            api.grant(user, f"default/{name}", "admin")
        with WebClient(server.url) as client:
            client.sign_in(user, user_password)
            form = client.get(f"/ui/repositories/default/{group}/settings")
            assert form.status_code == 200, form.text
            assert shown in form.text and hidden not in form.text
            assert '<datalist id="known-users"></datalist>' in form.text
            token = client.page_token(f"/ui/repositories/default/{group}/settings")
            saved = client.post(
                f"/ui/repositories/default/{group}/settings",
                {"type": "group", "visibility": "public", "members": shown},
                token=token,
            )
            assert saved.status_code == 303, saved.text
            assert _repository(server, group).json()["members"] == [shown, hidden]
            # A private repository they may not read is refused as a missing one would be.
            refused = client.post(
                f"/ui/repositories/default/{group}/settings",
                {"type": "group", "visibility": "public", "members": f"{shown}\n{hidden}"},
                token=token,
            )
            missing = client.post(
                f"/ui/repositories/default/{group}/settings",
                {"type": "group", "visibility": "public", "members": "default/no-such-repo"},
                token=token,
            )
            assert refused.status_code == missing.status_code == 400
            assert hidden in refused.text and "does not exist" in refused.text
            mirror_form = client.get(f"/ui/repositories/default/{mirror}/settings")
            assert "mirror-secret" not in mirror_form.text
            assert "mirror-user" not in mirror_form.text
            assert "http://127.0.0.1:9/simple/" in mirror_form.text
            kept = client.post(
                f"/ui/repositories/default/{mirror}/settings",
                {
                    "type": "proxy",
                    "visibility": "public",
                    "upstreams": "http://127.0.0.1:9/simple/",
                },
                token=token,
            )
            assert kept.status_code == 303, kept.text
        (upstream,) = _repository(server, mirror).json()["upstreams"]
        assert upstream["url"] == "http://127.0.0.1:9/simple/" and upstream["has_password"]


def test_a_proxied_file_is_shown_as_cached_once_this_repository_fetched_it(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    """Not because the shared blob store holds its bytes (here a hosted repository's): that
    says nothing about this repository, which serves stored bytes only for what it fetched
    and verified itself (`proxy_files`)."""
    project = proxy_env.upstream.add_project(unique_project("held"), ("1.0",))
    wheel = project.files[0]
    copy = tmp_path / wheel.filename
    copy.write_bytes(wheel.data)
    proxy_env.upload(copy, "internal2")
    listed = proxy_env.page("pypi", project.normalized)
    url = next(f["url"] for f in listed.json()["files"] if f["filename"] == wheel.filename)
    project_page = f"/ui/repositories/default/pypi/projects/{project.normalized}/"
    file_page = f"{project_page}1.0/files/{wheel.filename}"
    with WebClient(proxy_env.url) as anyone:
        assert "not cached yet" in anyone.get(file_page).text
        assert "not yet" in anyone.get(project_page).text
        assert httpx.get(url, timeout=30).content == wheel.data
        # The record is written just after the last byte leaves (docs/performance.md, "Where
        # the time goes"): "cached here" follows within moments, not necessarily at once.
        deadline = time.monotonic() + 10
        while "cached here" not in anyone.get(file_page).text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "cached here" in anyone.get(file_page).text
        assert 'badge-state-ok">cached<' in anyone.get(project_page).text


def test_every_api_route_is_documented_and_the_docs_load_nothing_from_elsewhere(
    wheelyard_server: RunningServer,
) -> None:
    document = http.get(f"{wheelyard_server.url}/openapi.json").json()
    paths = document["paths"]
    for route in routes.ROUTES:
        if route.prefix or route.name.endswith("_redirect"):
            continue
        assert route.template in paths, route.name
        for method in route.methods - {"HEAD"}:
            if route is routes.RAW_UPLOAD and method == "POST":
                continue  # the same as PUT, documented once
            assert method.lower() in paths[route.template], (route.name, method)
    for management in ("/api/v1/users", "/api/v1/tokens", "/api/v1/audit", "/api/v1/auth/token"):
        assert management in paths
    assert not any(p.startswith("/ui") or p.startswith("/_wheelyard") for p in paths)
    docs = http.get(f"{wheelyard_server.url}/docs").text
    for reference in re.findall(r'(?:src|href)="([^"]+)"', docs):
        assert reference.startswith("/"), reference
    assert "validatorUrl" in docs
    for asset in re.findall(r'(?:src|href)="(/docs/[^"]+)"', docs):
        assert http.get(wheelyard_server.url + asset).status_code == 200, asset
