"""The management API, fuzzed from its own OpenAPI schema with Schemathesis (issue 9: "no 5xx,
and responses match the schema").

A dedicated server (the fuzzer creates, changes and deletes users, repositories, permissions
and tokens at random), called as the administrator so that every operation is reached past
its access checks, with data that fits the schema and data that does not. Every Schemathesis
check runs on every response (no server error; a documented status code, content type and
headers; a body that matches the declared model; input that does not fit refused) but one:
`positive_data_acceptance` (a request that fits the schema must succeed). The rules a person
needs explained (what a username or repository name may hold, that a group's members exist,
that an upstream's host resolves) are the domain's, answered with a 400 that says which, so
the schema's types stay looser than they. Bounded in time: a fixed number of examples per
operation and mode, derandomized so that a run is repeatable, no shrinking.

Schemathesis's own pytest integration (`schemathesis.pytest.from_fixture`) does not run on
pytest 9 (it sets `Function._nodeid`), so the operations are parametrized here, from the
schema the app builds in-process; each test then fuzzes that operation as the server serves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from wheelyard.gateway.app import create_app
from wheelyard.testing.management import http
from wheelyard.testing.server import ServerProcess

ADMIN = ("admin", "fuzz-admin-password")
EXAMPLES = 25  # per operation and mode

OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, methods in create_app().openapi()["paths"].items()
    for method in methods
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("fuzz-server")
    with ServerProcess(data, {"WHEELYARD_ADMIN_PASSWORD": ADMIN[1]}) as process:
        yield process


@pytest.fixture(scope="module")
def served_schema(fuzz_server: ServerProcess) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


def test_the_server_serves_the_schema_the_tests_were_built_from(served_schema: BaseSchema) -> None:
    # The served document also has the services' routes (merged for /docs, issue 11); the
    # gateway's own operations, the ones fuzzed here, are all in it as the app declares them.
    served = {result.ok().label for result in served_schema.get_all_operations()}
    assert set(OPERATIONS) <= served
    assert all(label.split(" ", 1)[1].startswith("/api/v1/") for label in OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_answers_any_input_within_its_schema(
    served_schema: BaseSchema, label: str, mode: GenerationMode
) -> None:
    operation = served_schema.find_operation_by_label(label)
    assert operation is not None, label

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def fuzz(case: Case) -> None:
        case.call_and_validate(auth=ADMIN, timeout=60, excluded_checks=[positive_data_acceptance])

    try:
        fuzz()
    except Unsatisfiable:
        # Only in negative mode, for an operation whose every input is a free string or
        # absent: there is nothing that does not fit its schema to send.
        assert mode is GenerationMode.NEGATIVE, label


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        # The case the issue reported (a 500): a file:// upstream in a repository change.
        (
            "PATCH",
            "/repositories/default/pypi",
            {"upstreams": [{"url": "file:///etc/passwd"}]},
            422,
        ),
        ("PATCH", "/repositories/default/pypi", {"upstreams": [{"url": "http://[::1/"}]}, 422),
        ("PATCH", "/repositories/default/pypi", {"upstreams": [{"url": "http://h:99999/"}]}, 400),
        (
            "PATCH",
            "/repositories/default/pypi",
            {"upstreams": [{"url": f"http://{'x' * 70}/"}]},
            400,
        ),
        ("DELETE", f"/tokens/{2**70}", None, 422),
        ("GET", f"/audit?before={2**70}", None, 422),
        ("POST", "/auth/token", b"{not json", 400),
    ],
)
def test_bad_management_input_is_a_4xx_that_says_why(
    fuzz_server: ServerProcess, method: str, path: str, body: object, expected: int
) -> None:
    content = body if isinstance(body, bytes) else None
    r = http.request(
        method,
        f"{fuzz_server.url}/api/v1{path}",
        json=None if content is not None else body,
        content=content,
        headers={"Content-Type": "application/json"},
        auth=ADMIN,
    )

    assert r.status_code == expected, r.text
    assert r.json()["detail"]
