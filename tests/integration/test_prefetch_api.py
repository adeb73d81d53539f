"""`POST /api/v1/repositories/<storage>/<repo>/prefetch`: a lockfile in, a job to poll out;
who may start and read jobs; the fetched files are cached and pinned.

Runs against the session proxy server (`proxy_env`) and its local upstream.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from wheelyard.testing.dist_factory import make_wheel
from wheelyard.testing.management import ManagementApi
from wheelyard.testing.proxy_env import ADMIN, ProxyEnv
from wheelyard.testing.server_fixtures import unique_project
from wheelyard.testing.upstream import UpstreamFile


def _api(proxy_env: ProxyEnv, repo: str) -> str:
    return f"{proxy_env.url}/api/v1/repositories/default/{repo}/prefetch"


def _wait(url: str, auth: tuple[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        r = httpx.get(url, auth=auth, timeout=30)
        assert r.status_code == 200, r.text
        job = dict(r.json())
        if job["status"] == "done" or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_a_prefetch_job_fetches_pins_and_reports(proxy_env: ProxyEnv) -> None:
    api = ManagementApi(proxy_env.url, ADMIN)
    writer = api.user("prefetcher")
    api.grant(writer[0], "default/pypi", "write")
    name = unique_project("pf")
    project = proxy_env.upstream.add_project(name, ("1.0", "2.0"))
    wanted = next(f for f in project.files if "-2.0-" in f.filename)
    body = f"{name}==2.0 --hash=sha256:{wanted.sha256}\n{name}==9.9\n"

    r = httpx.post(_api(proxy_env, "pypi"), content=body, auth=writer, timeout=30)
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] == "queued" and r.headers["location"] == started["url"]
    job = _wait(f"{_api(proxy_env, 'pypi')}/{started['id']}", writer)

    assert job["status"] == "done", job
    assert (job["total"], job["fetched"], job["failed"]) == (2, 1, 1), job
    by_name = {o["filename"]: o for o in job["outcomes"]}
    assert by_name[wanted.filename]["status"] == "fetched"
    assert "lists no file of version 9.9" in by_name[f"{name}==9.9"]["reason"]
    assert job["created_by"] == writer[0]
    held = proxy_env.sql(
        "SELECT f.filename FROM proxy_files f JOIN repositories r ON r.id = f.repository_id"
        " WHERE r.name = 'pypi' AND f.project = ?",
        (name,),
    )
    assert {row[0] for row in held} == {wanted.filename, wanted.filename + ".metadata"}
    pinned = proxy_env.sql(
        "SELECT p.filename, p.reason FROM proxy_pins p JOIN repositories r"
        " ON r.id = p.repository_id WHERE r.name = 'pypi' AND p.filename = ?",
        (wanted.filename,),
    )
    assert pinned == [(wanted.filename, "prefetch")]
    assert proxy_env.upstream.file_hits(wanted.filename) == 1

    # The same lockfile again: nothing is fetched, the file was cached.
    again = httpx.post(_api(proxy_env, "pypi"), content=body, auth=writer, timeout=30).json()
    job = _wait(f"{_api(proxy_env, 'pypi')}/{again['id']}", writer)
    assert (job["fetched"], job["cached"]) == (0, 1), job
    assert proxy_env.upstream.file_hits(wanted.filename) == 1


def test_who_may_start_and_read_prefetch_jobs(proxy_env: ProxyEnv) -> None:
    api = ManagementApi(proxy_env.url, ADMIN)
    reader = api.user("reader")  # default/pypi is public: everyone reads it
    writer = api.user("writer")
    api.grant(writer[0], "default/pypi", "write")
    body = "nothing==1.0\n"

    anonymous = httpx.post(_api(proxy_env, "pypi"), content=body, timeout=30)
    assert anonymous.status_code == 401, anonymous.text
    read_only = httpx.post(_api(proxy_env, "pypi"), content=body, auth=reader, timeout=30)
    assert read_only.status_code == 403, read_only.text
    # A private repository the caller may not read answers exactly as a missing one.
    secret = httpx.post(_api(proxy_env, "secret"), content=body, auth=reader, timeout=30)
    missing = httpx.post(_api(proxy_env, "no-such-repo"), content=body, auth=reader, timeout=30)
    assert secret.status_code == missing.status_code == 404
    assert secret.json()["detail"].replace("secret", "X") == missing.json()["detail"].replace(
        "no-such-repo", "X"
    )

    started = httpx.post(_api(proxy_env, "pypi"), content=body, auth=writer, timeout=30)
    assert started.status_code == 202, started.text
    url = f"{_api(proxy_env, 'pypi')}/{started.json()['id']}"
    assert httpx.get(url, timeout=30).status_code == 401
    assert httpx.get(url, auth=reader, timeout=30).status_code == 403
    assert httpx.get(url, auth=writer, timeout=30).status_code == 200
    unknown = httpx.get(f"{_api(proxy_env, 'pypi')}/{'0' * 32}", auth=writer, timeout=30)
    assert unknown.status_code == 404

    # Bad input: clear problems, no job.
    unpinned = httpx.post(_api(proxy_env, "pypi"), content="foo>=1\n", auth=ADMIN, timeout=30)
    assert unpinned.status_code == 400, unpinned.text
    assert "not pinned to one version" in unpinned.json()["detail"]
    hosted = httpx.post(_api(proxy_env, "internal"), content=body, auth=ADMIN, timeout=30)
    assert hosted.status_code == 400, hosted.text
    assert "is a hosted repository" in hosted.json()["detail"]


def test_jobs_at_once_are_bounded(proxy_env: ProxyEnv) -> None:
    name = unique_project("busy")
    proxy_env.upstream.add_project(name, ("1.0",))
    proxy_env.upstream.slow(3.0, f"/simple/{name}/")
    body = f"{name}==1.0\n"
    started = [
        httpx.post(_api(proxy_env, "pypi"), content=body, auth=ADMIN, timeout=30) for _ in range(4)
    ]
    assert [r.status_code for r in started] == [202] * 4, [r.text for r in started]
    refused = httpx.post(_api(proxy_env, "pypi"), content=body, auth=ADMIN, timeout=30)
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "30"
    for r in started:
        job = _wait(f"{_api(proxy_env, 'pypi')}/{r.json()['id']}", ADMIN)
        assert job["status"] == "done" and job["failed"] == 0, job


def test_pins_take_the_wheels_of_the_platforms_asked_else_the_sdist(
    proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    name = unique_project("plat")
    proxy_env.upstream.add_project(name, ("1.0",), sdist=True)  # a py3-none-any wheel too
    tags = ("cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-win_amd64", "cp311-cp311-win_amd64")
    for tag in tags:
        wheel = make_wheel(tmp_path, name, "1.0", tag=tag)
        proxy_env.upstream.add_file(name, UpstreamFile(wheel.name, wheel.read_bytes()))
    native = unique_project("native")  # platform wheels and an sdist, no pure wheel
    proxy_env.upstream.add_project(native, ("2.0",), sdist=True)
    proxy_env.upstream.project(native).files = [
        f for f in proxy_env.upstream.project(native).files if not f.filename.endswith(".whl")
    ]
    wheel = make_wheel(tmp_path, native, "2.0", tag="cp312-cp312-macosx_11_0_arm64")
    proxy_env.upstream.add_file(native, UpstreamFile(wheel.name, wheel.read_bytes()))

    r = httpx.post(
        _api(proxy_env, "pypi"),
        content=f"{name}==1.0\n{native}==2.0\n",
        params={"platform": "win_amd64", "python_version": "3.12"},
        auth=ADMIN,
        timeout=30,
    )
    assert r.status_code == 202, r.text
    job = _wait(f"{_api(proxy_env, 'pypi')}/{r.json()['id']}", ADMIN)
    fetched = sorted(o["filename"] for o in job["outcomes"] if o["status"] == "fetched")
    pure = name.replace("-", "_")
    assert fetched == sorted(
        [
            f"{pure}-1.0-cp312-cp312-win_amd64.whl",
            f"{pure}-1.0-py3-none-any.whl",
            f"{native.replace('-', '_')}-2.0.tar.gz",  # no wheel of it installs there
        ]
    ), job

    bad = httpx.post(
        _api(proxy_env, "pypi"),
        content=f"{name}==1.0\n",
        params={"python_version": "three"},
        auth=ADMIN,
        timeout=30,
    )
    assert bad.status_code == 400 and "python version 'three'" in bad.json()["detail"], bad.text


def test_a_lock_pinning_other_bytes_than_the_index_lists_is_refused(proxy_env: ProxyEnv) -> None:
    name = unique_project("drift")
    project = proxy_env.upstream.add_project(name, ("1.0",))
    wheel = project.files[0]
    pylock = (
        'lock-version = "1.0"\ncreated-by = "test"\n\n[[packages]]\n'
        f'name = "{name}"\nversion = "1.0"\n'
        f'wheels = [{{ url = "https://elsewhere.invalid/{wheel.filename}", '
        f'hashes = {{ sha256 = "{"0" * 64}" }} }}]\n'
    )
    r = httpx.post(_api(proxy_env, "pypi"), content=pylock, auth=ADMIN, timeout=30)
    assert r.status_code == 202, r.text
    job = _wait(f"{_api(proxy_env, 'pypi')}/{r.json()['id']}", ADMIN)
    [outcome] = job["outcomes"]
    assert outcome["status"] == "failed", job
    assert outcome["reason"] == (
        f"the lockfile pins sha256 {'0' * 64}, the index lists {wheel.sha256}"
    )
    assert proxy_env.upstream.file_hits(wheel.filename) == 0
