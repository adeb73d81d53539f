"""uv resolves from PEP 658/714 `.metadata` files instead of downloading wheels
(docs/standards.md §8).

The server's access log is off by default, so uv talks to it through a `RequestRecorder`, a
forwarder that records every request line the server receives.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from wheelyard.testing.clients import RequestRecorder, run, uv_binary
from wheelyard.testing.dist_factory import make_wheel, metadata_text
from wheelyard.testing.server_fixtures import RunningServer, unique_project


def test_uv_pip_compile_reads_core_metadata_files_and_never_downloads_the_wheels(
    wheelyard_server: RunningServer, tmp_path: Path
) -> None:
    app, dependency = unique_project("meta-app"), unique_project("meta-dep")
    # The dependency is declared only in the wheel's METADATA: resolving it proves uv read it.
    app_metadata = metadata_text(app, "1.0", requires_dist=[f"{dependency}>=2"])
    wheels = [
        make_wheel(tmp_path, app, "1.0", metadata=app_metadata),
        make_wheel(tmp_path, dependency, "2.0"),
    ]
    for wheel in wheels:
        response = wheelyard_server.upload(wheel)
        assert response.status_code == 200, response.text
    requirements = tmp_path / "requirements.in"
    requirements.write_text(f"{app}\n")
    port = urlsplit(wheelyard_server.url).port
    assert port is not None

    with RequestRecorder("127.0.0.1", port) as recorder:
        index = f"{recorder.url}/repositories/default/local/simple/"
        outcome = run(
            [uv_binary(), "pip", "compile", "--no-cache", "--index-url", index, requirements]
        )
        seen = recorder.requests

    outcome.succeeded()
    assert f"{app}==1.0" in outcome.output, outcome.describe()
    assert f"{dependency}==2.0" in outcome.output, outcome.describe()
    paths = [path for method, path in seen if method == "GET"]
    for wheel in wheels:
        assert any(p.endswith(f"/{wheel.name}.metadata") for p in paths), seen
        assert not any(p.endswith(f"/{wheel.name}") for p in paths), seen
    assert {method for method, _ in seen} == {"GET"}, seen  # no HEAD/range probing of wheels
