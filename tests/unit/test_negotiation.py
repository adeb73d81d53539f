"""Content negotiation for simple pages: PEP 691 "Version + Format Selection", with the choices
it leaves to the server made as in docs/standards.md §5."""

from __future__ import annotations

import pytest

from wheelyard.shared.packaging.simple.model import HTML_V1, JSON_V1, TEXT_HTML
from wheelyard.shared.web.negotiation import content_type_for, negotiate

PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
POETRY = "application/vnd.pypi.simple.v1+json, */*;q=0.1"
PDM = PIP
PYPI_SIMPLE = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html, text/html;q=0.01"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        pytest.param(PIP, JSON_V1, id="pip"),
        pytest.param(UV, JSON_V1, id="uv"),
        pytest.param(POETRY, JSON_V1, id="poetry"),
        pytest.param(PDM, JSON_V1, id="pdm"),
        pytest.param(PYPI_SIMPLE, JSON_V1, id="pypi-simple-tie-prefers-json"),
        pytest.param("text/html", TEXT_HTML, id="dependabot"),
        pytest.param(None, TEXT_HTML, id="no-header"),
        pytest.param("", TEXT_HTML, id="empty-header"),
        pytest.param("*/*", TEXT_HTML, id="wildcard"),
        pytest.param("*", TEXT_HTML, id="bare-star"),
        pytest.param(JSON_V1, JSON_V1, id="v1-json"),
        pytest.param(HTML_V1, HTML_V1, id="v1-html"),
        pytest.param("application/vnd.pypi.simple.latest+json", JSON_V1, id="latest-json"),
        pytest.param("application/vnd.pypi.simple.latest+html", HTML_V1, id="latest-html"),
        pytest.param(f"{JSON_V1};q=0.1, text/html", TEXT_HTML, id="q-honoured"),
        pytest.param(f"text/html;q=0, {JSON_V1}", JSON_V1, id="q0-not-acceptable"),
        pytest.param("application/json", TEXT_HTML, id="application-json-gets-default"),
        pytest.param("image/png, application/xml", TEXT_HTML, id="nothing-acceptable"),
        pytest.param(f"{JSON_V1};q=0", TEXT_HTML, id="only-offer-refused"),
        pytest.param("text/*", TEXT_HTML, id="text-wildcard"),
        pytest.param("application/*", HTML_V1, id="application-wildcard-prefers-html"),
        pytest.param(f"text/html, {JSON_V1}", JSON_V1, id="named-tie-prefers-json"),
        pytest.param(f"text/html, {HTML_V1}", HTML_V1, id="named-tie-v1-html-over-text"),
        pytest.param(f"{JSON_V1}, */*", JSON_V1, id="named-beats-wildcard-at-same-q"),
        pytest.param(f"text/html;q=0.5, {JSON_V1};q=0.5, */*;q=0.9", HTML_V1, id="wild-q"),
        pytest.param(f"{JSON_V1};q=0.5, */*", TEXT_HTML, id="wildcard-higher-q"),
        pytest.param(f"*/*, {JSON_V1};q=0", TEXT_HTML, id="specific-q0-overrides-wildcard"),
        pytest.param(f"*/*;q=0, {JSON_V1}", JSON_V1, id="wildcard-q0"),
        pytest.param(f"{JSON_V1};q=0.001, text/html;q=0.0005", JSON_V1, id="bad-q-dropped"),
        pytest.param(f"{JSON_V1};q=0.999, text/html;q=1.000", TEXT_HTML, id="three-decimals"),
        pytest.param(f"{JSON_V1};q=2, text/html;q=0.5", TEXT_HTML, id="q-above-one-ignored"),
        pytest.param(f"{JSON_V1};q=abc", TEXT_HTML, id="garbage-q"),
        pytest.param("APPLICATION/VND.PYPI.SIMPLE.V1+JSON", JSON_V1, id="case-insensitive"),
        pytest.param(f"  {JSON_V1}  ;  q=1  ", JSON_V1, id="whitespace"),
        pytest.param(f"{JSON_V1};charset=utf-8", JSON_V1, id="extra-params"),
        pytest.param(f"{JSON_V1};q=0.5;ext=1, text/html;q=0.4", JSON_V1, id="accept-ext"),
        pytest.param(",,, ;;; garbage", TEXT_HTML, id="garbage"),
        pytest.param(
            f"application/vnd.pypi.simple.latest+json;q=0.2, {JSON_V1};q=0.1, text/html;q=0.15",
            JSON_V1,
            id="latest-and-v1-take-higher-q",
        ),
    ],
)
def test_negotiate(accept, expected):
    assert negotiate(accept) == expected


@pytest.mark.parametrize(
    ("accept", "format_param", "expected"),
    [
        (PIP, TEXT_HTML, TEXT_HTML),
        (None, JSON_V1, JSON_V1),
        ("text/html", "application/vnd.pypi.simple.latest+json", JSON_V1),
        (PIP, HTML_V1, HTML_V1),
        (PIP, "application/json", JSON_V1),  # unknown format falls back to Accept
        (None, "application/json", TEXT_HTML),
        (PIP, "", JSON_V1),
        (PIP, None, JSON_V1),
    ],
)
def test_format_param_takes_precedence(accept, format_param, expected):
    assert negotiate(accept, format_param) == expected


def test_negotiate_handles_huge_headers_without_caching():
    header = ", ".join(["application/x-junk"] * 2000) + f", {JSON_V1}"
    assert negotiate(header) == JSON_V1


def test_negotiate_repeated_calls_are_stable():
    assert {negotiate(PIP) for _ in range(5)} == {JSON_V1}


@pytest.mark.parametrize(
    ("media", "header"),
    [
        (TEXT_HTML, "text/html; charset=utf-8"),
        (HTML_V1, "application/vnd.pypi.simple.v1+html"),
        (JSON_V1, "application/vnd.pypi.simple.v1+json"),
    ],
)
def test_content_type_for(media, header):
    assert content_type_for(media) == header


def test_content_type_for_refuses_application_json():
    with pytest.raises(ValueError, match="not a simple-API media type"):
        content_type_for("application/json")


def test_every_negotiated_type_has_a_content_type():
    for accept in (PIP, UV, POETRY, None, "*/*", HTML_V1, "application/json"):
        assert content_type_for(negotiate(accept))
