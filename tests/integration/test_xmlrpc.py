"""PyPI's legacy XML-RPC API (`search`, `list_packages`) at `/pypi` and each repository's
`/pypi`: the same search as `/api/v1/search`, read permissions honoured (a private project is
never a hit for someone who may not read it, and a private repository answers like a missing
one), and a fault that says what is wrong for every malformed call.

The calls are made with the standard library's `xmlrpc.client` (what pip's `search` uses)
over httpx, against the session's real server.
"""

from __future__ import annotations

import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from wheelyard.testing.dist_factory import make_wheel, metadata_text
from wheelyard.testing.management import ManagementApi, http, unique_name
from wheelyard.testing.server_fixtures import RunningServer
from wheelyard.testing.uploads import upload_file

XML = {"Content-Type": "text/xml"}


@dataclass
class World:
    server: RunningServer
    word: str  # in every project name below, and nowhere else
    public: str  # in default/local
    private: str  # in a private repository
    private_repo: str
    reader: tuple[str, str]


@pytest.fixture(scope="module")
def world(wheelyard_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    setup = ManagementApi.of(wheelyard_server)
    word = unique_name("xr").replace("-", "")
    public, private = f"{word}-public", f"{word}-secret"
    private_repo = setup.repository("private", prefix="xr-private")
    reader = setup.user("xr-reader")
    setup.grant(reader[0], private_repo, "read")
    directory = tmp_path_factory.mktemp("xmlrpc")
    for name, repo in ((public, "default/local"), (private, private_repo)):
        wheel = make_wheel(
            directory,
            name,
            "1.0",
            metadata=metadata_text(name, "1.0", summary=f"the {name} summary"),
        )
        r = upload_file(wheelyard_server.upload_url(repo), wheel, auth=wheelyard_server.admin)
        assert r.status_code == 200, r.text
    return World(wheelyard_server, word, public, private, private_repo, reader)


def call(url: str, method: str, *params: Any, auth: tuple[str, str] | None = None) -> Any:
    """The result of an XML-RPC call (raises xmlrpc.client.Fault for a fault)."""
    body = xmlrpc.client.dumps(params, method)
    r = http.post(url, content=body, headers=XML, auth=auth)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/xml")
    assert "private" in r.headers["cache-control"]
    (result,), _method = xmlrpc.client.loads(r.content)
    return result


def fault_of(url: str, body: bytes | str, headers: dict[str, str] | None = None) -> str:
    r = http.post(url, content=body, headers=headers or XML)
    assert r.status_code == 200, r.text
    with pytest.raises(xmlrpc.client.Fault) as raised:
        xmlrpc.client.loads(r.content)
    return raised.value.faultString


def names(hits: list[dict[str, Any]]) -> set[str]:
    return {hit["name"] for hit in hits}


def test_pip_search_call_at_the_root_finds_public_projects_only(world: World) -> None:
    hits = call(
        f"{world.server.url}/pypi", "search", {"name": [world.word], "summary": [world.word]}, "or"
    )
    assert names(hits) == {world.public}
    (hit,) = hits
    assert hit["version"] == "1.0" and hit["summary"] == f"the {world.public} summary"
    # With a trailing slash, and at the hosted repository itself.
    assert names(call(f"{world.server.url}/pypi/", "search", {"name": world.word})) == {
        world.public
    }
    local = f"{world.server.local}/pypi"
    assert names(call(local, "search", {"summary": [f"the {world.public}"]})) == {world.public}


def test_a_reader_finds_the_private_project_and_an_administrator_everything(world: World) -> None:
    root = f"{world.server.url}/pypi"
    spec = {"name": [world.word]}
    # The default group holds only `local` and the proxy: a private repository is not in it.
    assert names(call(root, "search", spec, auth=world.reader)) == {world.public}
    private_url = f"{world.server.url}/repositories/{world.private_repo}/pypi"
    assert names(call(private_url, "search", spec, auth=world.reader)) == {world.private}
    assert world.private in call(private_url, "list_packages", auth=world.reader)


def test_a_private_repository_answers_anonymous_callers_like_a_missing_one(world: World) -> None:
    body = xmlrpc.client.dumps(({"name": [world.word]},), "search")
    private = http.post(
        f"{world.server.url}/repositories/{world.private_repo}/pypi", content=body, headers=XML
    )
    missing = http.post(
        f"{world.server.url}/repositories/default/{unique_name('none')}/pypi",
        content=body,
        headers=XML,
    )
    assert private.status_code == missing.status_code == 401
    assert world.private not in private.text
    assert private.json()["title"] == missing.json()["title"]
    # Someone signed in without rights gets a 404, exactly as for a missing repository.
    stranger = ManagementApi.of(world.server).user("xr-stranger")
    private = http.post(
        f"{world.server.url}/repositories/{world.private_repo}/pypi",
        content=body,
        headers=XML,
        auth=stranger,
    )
    assert private.status_code == 404 and world.private not in private.text


def test_and_needs_every_term_and_or_any(world: World) -> None:
    root = f"{world.server.url}/pypi"
    both = {"name": [world.word], "summary": ["nothing-like-this"]}
    assert call(root, "search", both, "and") == []
    assert names(call(root, "search", both, "or")) == {world.public}


def test_list_packages_lists_readable_projects(world: World) -> None:
    listed = call(f"{world.server.url}/pypi", "list_packages")
    assert world.public in listed and world.private not in listed


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not xml at all", "not well-formed XML"),
        ("<methodResponse/>", "expected a <methodCall>"),
        ("<methodCall><params/></methodCall>", "names no <methodName>"),
        (xmlrpc.client.dumps((), "delete_everything"), "not supported here"),
        (xmlrpc.client.dumps(("word",), "search"), "search(spec, operator)"),
        (xmlrpc.client.dumps(({"name": "x"}, "xor"), "search"), "operator must be"),
        (xmlrpc.client.dumps(({"author": "x"},), "search"), "cannot search by 'author'"),
        (xmlrpc.client.dumps(({"name": ["x"] * 40},), "search"), "more than 16 search terms"),
        (xmlrpc.client.dumps(({"name": "x" * 300},), "search"), "longer than 200"),
        (xmlrpc.client.dumps((1,), "list_packages"), "takes no parameters"),
        (
            "<methodCall><methodName>search</methodName><params><param><value><int>x</int>"
            "</value></param></params></methodCall>",
            "not a valid <int>",
        ),
        (
            # An entity expansion bomb ("billion laughs"): refused before anything expands.
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            "<methodCall><methodName>&lol2;</methodName></methodCall>",
            "refused XML",
        ),
        (
            "<methodCall><methodName>search</methodName><params><param>"
            + "<value><array><data>" * 20
            + "</data></array></value>" * 20
            + "</param></params></methodCall>",
            "nest deeper",
        ),
    ],
)
def test_a_malformed_call_gets_a_fault_saying_what_is_wrong(
    wheelyard_server: RunningServer, body: str, expected: str
) -> None:
    assert expected in fault_of(f"{wheelyard_server.url}/pypi", body)


def test_a_body_that_is_too_large_or_not_xml_gets_a_fault(wheelyard_server: RunningServer) -> None:
    url = f"{wheelyard_server.url}/pypi"
    huge = xmlrpc.client.dumps(({"name": "x" * 100_000},), "search")
    assert "larger than 65536 bytes" in fault_of(url, huge)
    assert "send the call as text/xml" in fault_of(
        url, xmlrpc.client.dumps((), "list_packages"), {"Content-Type": "application/json"}
    )


def test_the_simple_api_and_uploads_beside_pypi_are_unchanged(world: World, tmp_path: Path) -> None:
    # `/pypi/<project>/json` is still the JSON API; POST to the repository is still upload.
    r = httpx.get(f"{world.server.local}/pypi/{world.public}/json", timeout=30)
    assert r.status_code == 200 and r.json()["info"]["version"] == "1.0"
    name = unique_name("xr-upload")
    wheel = make_wheel(tmp_path, name, "1.0")
    r = upload_file(world.server.upload_url(), wheel, auth=world.server.admin)
    assert r.status_code == 200, r.text


# -- the project URLs publishers print ----------------------------------------------------------


def test_the_project_urls_publishers_print_lead_to_the_project_page(world: World) -> None:
    base, project = world.server.local, world.public
    expected = {
        f"{base}/{project}/1.0/": f"/ui/repositories/default/local/projects/{project}/1.0/",
        f"{base}/{project}": f"/ui/repositories/default/local/projects/{project}/",
        f"{base}/{project}/": f"/ui/repositories/default/local/projects/{project}/",
        f"{base}//{project}": f"/ui/repositories/default/local/projects/{project}/",
    }
    for printed, page in expected.items():
        r = httpx.get(printed, timeout=30)
        assert r.status_code == 303 and r.headers["location"] == page, (printed, r)
        shown = httpx.get(printed, follow_redirects=True, timeout=30)
        assert shown.status_code == 200 and project in shown.text, printed


def test_a_private_project_url_redirects_but_shows_nothing_to_strangers(world: World) -> None:
    url = f"{world.server.url}/repositories/{world.private_repo}/{world.private}/1.0/"
    missing = f"{world.server.url}/repositories/default/{unique_name('none')}/x/1.0/"
    shown, absent = (httpx.get(u, follow_redirects=True, timeout=30) for u in (url, missing))
    assert shown.status_code == absent.status_code == 404
    # The name appears only in the sign-in link's `next`, which is the address asked for.
    assert world.private not in shown.text.replace(f"%2F{world.private}%2F", "")


def test_devpi_style_plus_simple_lists_the_files(world: World) -> None:
    # hatch asks `<repository>/+simple/<project>/` which files exist before uploading.
    r = httpx.get(f"{world.server.local}/+simple/{world.public}/", timeout=30)
    assert r.status_code == 200 and f"{world.public.replace('-', '_')}-1.0-" in r.text


def test_a_public_group_with_a_private_member_hides_it_from_those_who_may_not_read_it(
    world: World,
) -> None:
    group = unique_name("xr-group")
    r = http.post(
        f"{world.server.url}/api/v1/repositories",
        json={
            "name": group,
            "type": "group",
            "visibility": "public",
            "members": [world.private_repo, "default/local"],
        },
        auth=world.server.admin,
    )
    assert r.status_code == 201, r.text
    url = f"{world.server.url}/repositories/default/{group}/pypi"
    spec = {"name": [world.word]}
    assert names(call(url, "search", spec)) == {world.public}
    assert world.private not in call(url, "list_packages")
    assert names(call(url, "search", spec, auth=world.reader)) == {world.public, world.private}
