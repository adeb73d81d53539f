"""The web interface over HTTP: what installers get is unchanged, private repositories stay
invisible, sessions and their cookies, forgery protection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wheelyard.shared.auth.throttle import PAIR_FREE_FAILURES
from wheelyard.testing.dist_factory import make_wheel, metadata_text
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.server import ServerProcess
from wheelyard.testing.server_fixtures import RunningServer, unique_project
from wheelyard.testing.web import BROWSER_ACCEPT, WebClient

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


def _upload(server: RunningServer, tmp_path: Path, repo: str, name: str, summary: str) -> None:
    meta = metadata_text(name, "1.0", summary=summary)
    wheel = make_wheel(tmp_path, name, "1.0", metadata=meta)
    response = http.put(
        f"{server.url}/repositories/{repo}/{name}/1.0/{wheel.name}",
        content=wheel.read_bytes(),
        auth=server.admin,
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("accept", [PIP_ACCEPT, "*/*", None, "application/json"])
def test_installers_and_api_clients_get_what_they_got_before(
    wheelyard_server: RunningServer, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    for path in ("/", "/repositories/default/local/", "/repositories/default/local"):
        response = http.get(wheelyard_server.url + path, headers=headers)
        assert response.status_code == 404, (path, response.status_code)
        assert "location" not in response.headers
    simple = http.get(wheelyard_server.local_simple, headers=headers)
    assert simple.status_code == 200
    assert "Content-Security-Policy" not in simple.headers


def test_browsers_land_on_the_web_interface(wheelyard_server: RunningServer) -> None:
    landings = {
        "/": "/ui/",
        "/repositories/default/local/": "/ui/repositories/default/local/",
        "/repositories/default/pypi": "/ui/repositories/default/pypi/",
    }
    for path, target in landings.items():
        response = http.get(
            wheelyard_server.url + path, headers={"Accept": BROWSER_ACCEPT}, follow_redirects=False
        )
        assert response.status_code == 303, path
        assert response.headers["location"] == target
    # The simple API stays the simple API, for browsers too (PEP 503 pages are HTML).
    page = http.get(wheelyard_server.local_simple, headers={"Accept": BROWSER_ACCEPT})
    assert (page.status_code == 200 and "<a href" in page.text.lower()) or "Simple" in page.text


def test_private_repositories_and_their_projects_never_appear(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    api = ManagementApi.of(wheelyard_server)
    repo = api.repository("private")
    storage, name = repo.split("/")
    project = unique_project("secretpkg")
    summary = f"summary-{unique_name('s')}"
    _upload(wheelyard_server, tmp_path, repo, project, summary)
    outsider = api.user("outsider")
    reader = api.user("reader")
    api.grant(reader[0], repo, "read")
    ui = f"/ui/repositories/{storage}/{name}/"
    pages = [
        ui,
        f"{ui}projects/{project}/",
        f"{ui}projects/{project}/1.0/",
        f"{ui}projects/{project}/1.0/files/{project.replace('-', '_')}-1.0-py3-none-any.whl",
    ]
    missing = "/ui/repositories/default/no-such-repo/"

    def check_hidden(client: WebClient) -> None:
        home = client.get("/ui/")
        assert home.status_code == 200
        for secret in (name, project, summary):
            assert secret not in home.text
        for query in (project, summary, "secretpkg"):
            found = client.get(f"/ui/search?q={query}")
            assert f"projects/{project}/" not in found.text
            assert query == "secretpkg" or "0 results for" in found.text
        not_there = client.get(missing)
        for path in pages:
            response = client.get(path)
            assert response.status_code == 404, path
            # Answered exactly as a repository that does not exist.
            assert response.text.replace(f"{storage}/{name}", "X").replace(
                f"'{project}'", "X"
            ).count("does not exist") == not_there.text.count("does not exist")

    with WebClient(wheelyard_server.url) as anonymous:
        check_hidden(anonymous)
    with WebClient(wheelyard_server.url) as client:
        client.sign_in(*outsider)
        check_hidden(client)
    with WebClient(wheelyard_server.url) as client:
        client.sign_in(*reader)
        home = client.get("/ui/")
        assert repo in home.text and project in home.text
        assert project in client.get(f"/ui/search?q={summary}").text
        for path in pages:
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["cache-control"].startswith("private")


def test_public_pages_for_anonymous_readers_are_cacheable_and_locked_down(
    wheelyard_server: RunningServer,
) -> None:
    response = http.get(wheelyard_server.url + "/ui/repositories/default/local/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=0, must-revalidate"
    assert "Cookie" in response.headers["vary"]
    assert "set-cookie" not in response.headers
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def test_session_cookie_flags_and_sign_out_ends_the_session_on_the_server(
    wheelyard_server: RunningServer,
) -> None:
    with WebClient(wheelyard_server.url) as client:
        response = client.sign_in(*wheelyard_server.admin)
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("wheelyard_session=")
        for flag in ("HttpOnly", "SameSite=lax", "Path=/ui/"):
            assert flag.lower() in cookie.lower(), flag
        assert "secure" not in cookie.lower()  # plain HTTP here
        stolen = client.http.cookies.get("wheelyard_session")
        assert client.get("/ui/tokens").status_code == 200
        token = client.page_token()
        signed_out = client.post("/ui/signout", {}, token=token)
        assert signed_out.status_code == 303
        assert 'wheelyard_session=""' in signed_out.headers["set-cookie"] or (
            "max-age=0" in signed_out.headers["set-cookie"].lower()
        )
    # Someone who kept the cookie gets nothing from it.
    with WebClient(wheelyard_server.url) as thief:
        thief.http.cookies.set("wheelyard_session", stolen or "", path="/ui/")
        response = thief.get("/ui/tokens")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/signin")


def test_a_password_change_ends_every_session_of_that_user(
    wheelyard_server: RunningServer,
) -> None:
    api = ManagementApi.of(wheelyard_server)
    username, password = api.user("changer")
    with WebClient(wheelyard_server.url) as first, WebClient(wheelyard_server.url) as second:
        first.sign_in(username, password)
        second.sign_in(username, password)
        token = first.csrf("/ui/account")
        new = password + "-new"
        changed = first.post(
            "/ui/account/password",
            {"current": password, "password": new, "again": new},
            token=token,
        )
        assert changed.status_code == 303, changed.text
        # The browser that changed it is signed in again; the other session has ended.
        assert first.get("/ui/tokens").status_code == 200
        assert second.get("/ui/tokens").status_code == 303
        # A change made by an administrator ends the remaining one too.
        reset = http.patch(
            f"{wheelyard_server.url}/api/v1/users/{username}",
            json={"password": new + "-again"},
            auth=wheelyard_server.admin,
        )
        assert reset.status_code == 200
        assert first.get("/ui/tokens").status_code == 303


def test_a_deactivated_user_is_signed_out(wheelyard_server: RunningServer) -> None:
    api = ManagementApi.of(wheelyard_server)
    username, password = api.user("leaver")
    with WebClient(wheelyard_server.url) as client:
        client.sign_in(username, password)
        assert client.get("/ui/tokens").status_code == 200
        http.patch(
            f"{wheelyard_server.url}/api/v1/users/{username}",
            json={"is_active": False},
            auth=wheelyard_server.admin,
        )
        assert client.get("/ui/tokens").status_code == 303


def _token_names(server: RunningServer, auth: tuple[str, str]) -> list[str]:
    return [t["name"] for t in http.get(f"{server.url}/api/v1/tokens", auth=auth).json()]


def test_forms_without_the_token_or_from_another_site_are_refused(
    wheelyard_server: RunningServer,
) -> None:
    api = ManagementApi.of(wheelyard_server)
    user = api.user("csrf")
    form = {"name": "", "scope": "read", "repositories": "default/local"}
    with WebClient(wheelyard_server.url) as client:
        client.sign_in(*user)
        token = client.page_token()
        attempts = {
            "no token": dict(token=None),
            "wrong token": dict(token="x" * 43),
            "foreign origin": dict(token=token, origin="https://evil.example"),
            "null origin": dict(token=token, origin="null"),
            "cross-site fetch": dict(
                token=token, origin=None, headers={"Sec-Fetch-Site": "cross-site"}
            ),
        }
        for label, options in attempts.items():
            response = client.post("/ui/tokens", form | {"name": label}, **options)  # type: ignore[arg-type]
            assert response.status_code == 403, (label, response.status_code)
            assert "refused" in response.text or "expired" in response.text
        assert _token_names(wheelyard_server, user) == []
        made = client.post("/ui/tokens", form | {"name": "mine"}, token=token)
        assert made.status_code == 201, made.text
        assert re.search(r"wy_[A-Za-z0-9]{12}_", made.text)
        assert made.headers["cache-control"] == "private, no-store"
        assert _token_names(wheelyard_server, user) == ["mine"]
    # Signing in needs the form's token too (login CSRF): the cookie it pairs with.
    with WebClient(wheelyard_server.url) as fresh:
        response = fresh.post(
            "/ui/signin", {"username": user[0], "password": user[1]}, token="y" * 43
        )
        assert response.status_code == 403
        assert "wheelyard_session" not in response.headers.get("set-cookie", "")


def test_failed_sign_ins_are_throttled_and_audited_like_the_api_s(tmp_path: Path) -> None:
    # Its own server: failures from 127.0.0.1 count towards that address's limit too.
    with ServerProcess(tmp_path / "data", {"WHEELYARD_ADMIN_PASSWORD": "limits-password"}) as p:
        _failed_sign_ins(RunningServer(p, p.url, ("admin", "limits-password")))


def _failed_sign_ins(wheelyard_server: RunningServer) -> None:
    api = ManagementApi.of(wheelyard_server)
    username, password = api.user("guessed")
    with WebClient(wheelyard_server.url) as client:
        token = client.csrf("/ui/signin")
        statuses = [
            client.post(
                "/ui/signin", {"username": username, "password": f"wrong-{i}"}, token=token
            ).status_code
            for i in range(PAIR_FREE_FAILURES + 1)
        ]
        # Past the free failures this address waits, even with the right password (or it
        # would learn that it was right): the throttle of every sign-in (docs/security.md).
        right = client.post("/ui/signin", {"username": username, "password": password}, token=token)
    assert statuses == [400] * (PAIR_FREE_FAILURES + 1)
    assert right.status_code == 429, right.text
    assert 0 < int(right.headers["retry-after"]) <= 2
    assert "wheelyard_session" not in right.headers.get("set-cookie", "")
    audit = http.get(
        f"{wheelyard_server.url}/api/v1/audit",
        params={"action": "auth.failed", "actor": username},
        auth=wheelyard_server.admin,
    ).json()
    assert sorted(e["detail"]["reason"] for e in audit) == ["throttled"] + ["wrong password"] * (
        PAIR_FREE_FAILURES + 1
    )
    assert {e["detail"]["method"] for e in audit} == {"ui-sign-in"}


def test_session_cookie_is_secure_over_https(tmp_path: Path) -> None:
    password = "https-admin-password"
    with (
        ServerProcess(
            tmp_path / "data",
            {"WHEELYARD_ADMIN_PASSWORD": password, "WHEELYARD_PUBLIC_URL": "https://pkgs.example"},
        ) as process,
        WebClient(process.url) as client,
    ):
        token = client.csrf("/ui/signin")
        csrf_cookie = next(c for c in client.http.cookies.jar if c.name == "wheelyard_csrf")
        assert csrf_cookie.secure
        # httpx keeps Secure cookies for https only: send the pair by hand.
        response = client.http.post(
            "/ui/signin",
            data={"username": "admin", "password": password, "csrf_token": token},
            headers={"Origin": "https://pkgs.example", "Cookie": f"wheelyard_csrf={token}"},
        )
        assert response.status_code == 303, response.text
        assert "secure" in response.headers["set-cookie"].lower()
        # The configured public origin is this site's; another one is not.
        evil = client.http.post(
            "/ui/signin",
            data={"username": "admin", "password": password, "csrf_token": token},
            headers={"Origin": "https://evil.example", "Cookie": f"wheelyard_csrf={token}"},
        )
        assert evil.status_code == 403


def test_oversized_and_malformed_forms_are_refused(wheelyard_server: RunningServer) -> None:
    with WebClient(wheelyard_server.url) as client:
        token = client.csrf("/ui/signin")
        big = client.post("/ui/signin", {"username": "a" * 70_000, "password": "x"}, token=token)
        assert big.status_code == 413
        as_json = client.http.post(
            "/ui/signin", json={"csrf_token": token}, headers={"Origin": client.url}
        )
        assert as_json.status_code == 400
        # Bad query values get a page, not an API error.
        bad_page = client.get("/ui/repositories/default/local/?page=0")
        assert bad_page.status_code == 400 and "invalid value (page)" in bad_page.text
        # A `next` that leaves the site is ignored.
        form = client.get("/ui/signin?next=//evil.example/x")
        assert 'value="/ui/"' in form.text and "evil.example" not in form.text


def test_non_administrators_get_no_admin_pages(wheelyard_server: RunningServer) -> None:
    api = ManagementApi.of(wheelyard_server)
    user = api.user("plain")
    with WebClient(wheelyard_server.url) as client:
        assert client.get("/ui/admin/").status_code == 303  # anonymous: sign in first
        client.sign_in(*user)
        for path in (
            "/ui/admin/",
            "/ui/admin/users",
            "/ui/admin/audit",
            "/ui/repositories/default/local/settings",
        ):
            assert client.get(path).status_code == 403, path
        token = client.page_token()
        denied = client.post(
            "/ui/admin/repositories", {"name": "nope", "type": "hosted"}, token=token
        )
        assert denied.status_code == 403
        assert "Admin" not in client.get("/ui/").text.split("<main", 1)[0]
    assert (
        http.get(
            f"{wheelyard_server.url}/api/v1/repositories/default/nope", auth=wheelyard_server.admin
        ).status_code
        == 404
    )


def test_search_ranks_the_same_in_the_api_and_the_web_interface(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    word = unique_name("rank").replace("-", "")
    names = {
        "summary": (unique_name("zz"), f"mentions {word} in passing"),
        "contains": (f"aa-{word}-lib", "x"),
        "prefix": (f"{word}-plugin", "x"),
        "exact": (word, "x"),
    }
    for name, summary in names.values():
        _upload(wheelyard_server, tmp_path, "default/local", name, summary)
    expected = [names[k][0] for k in ("exact", "prefix", "contains", "summary")]
    found = http.get(f"{wheelyard_server.url}/api/v1/search", params={"q": word}).json()
    assert [h["name"] for h in found["results"]] == expected
    page = http.get(f"{wheelyard_server.url}/ui/search", params={"q": word}).text
    shown = re.findall(r'/projects/([^/"]+)/">', page)
    assert shown == expected


def test_a_group_s_project_page_is_its_first_member_s(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    project = unique_project("grouped")
    _upload(wheelyard_server, tmp_path, "default/local", project, "in a group")
    response = http.get(
        f"{wheelyard_server.url}/ui/repositories/default/all/projects/{project}/",
        follow_redirects=False,
    )
    assert response.status_code == 307
    assert response.headers["location"] == f"/ui/repositories/default/local/projects/{project}/"
    assert (
        http.get(
            f"{wheelyard_server.url}/ui/repositories/default/all/projects/{unique_project('no')}/"
        ).status_code
        == 404
    )
