"""Legacy uploads from tests: the form twine sends, built byte by byte, and one POST of it.

The body is written by hand (not by httpx's `files=`) so a test controls every byte: part
order, repeated or missing fields, a file part without Content-Type, a filename with path or
control characters, or a body cut anywhere. The building blocks (`part_head`, `form_part`,
`field_parts`, `form_end`) are public for tests that build or stream a body of their own
(floods, chunked uploads, truncated bodies, the parser's unit tests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import httpx

BOUNDARY = "wheelyard-test-boundary"
#: The Content-Type header of every body built here.
FORM_CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
#: What the file part declares unless told otherwise (twine's choice).
FILE_CONTENT_TYPE = "application/octet-stream"

#: A form value: one string, a list (the field repeated, in order), or None (field left out).
FieldValue = str | list[str] | None


def twine_fields(filename: str, data: bytes) -> dict[str, str]:
    """The text fields twine sends for `filename` holding `data`.

    Name and version come from the filename as it is (not normalized or validated, so a
    hostile filename yields hostile fields): for `.tar.gz` the text before and after the last
    `-`, otherwise the first two `-`-separated parts. `pyversion` is `source` for an sdist and
    the wheel's Python tag (the third part from the end) for a wheel, `py3` when the name has
    too few parts to hold tags. `metadata_version` is always 2.1; the sha256 and BLAKE2b-256
    digests are those of `data`.
    """
    if filename.endswith(".tar.gz"):
        name, _, version = filename.removesuffix(".tar.gz").rpartition("-")
        kind = {"filetype": "sdist", "pyversion": "source"}
    else:
        parts = filename.removesuffix(".whl").split("-")
        name, version = parts[0], parts[1] if len(parts) > 1 else ""
        python = parts[-3] if len(parts) >= 5 else "py3"
        kind = {"filetype": "bdist_wheel", "pyversion": python}
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name,
        "version": version,
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        **kind,
    }


def part_head(name: str, filename: bytes | None = None, content_type: str | None = None) -> bytes:
    """The start of a part, up to and including its blank line: boundary line,
    Content-Disposition (with `filename` when given, as raw bytes), Content-Type when given.
    The part's value and a CRLF are to follow."""
    disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    head = disposition + (f"\r\nContent-Type: {content_type}".encode() if content_type else b"")
    return f"--{BOUNDARY}\r\n".encode() + head + b"\r\n\r\n"


def form_part(
    name: str, value: bytes, filename: bytes | None = None, content_type: str | None = None
) -> bytes:
    """One whole part: `part_head(name, filename, content_type)`, `value`, CRLF."""
    return part_head(name, filename, content_type) + value + b"\r\n"


def form_end() -> bytes:
    """The closing boundary line."""
    return f"--{BOUNDARY}--\r\n".encode()


def field_parts(fields: Mapping[str, FieldValue]) -> bytes:
    """Text parts for `fields` in order: a list repeats its field, None leaves it out."""
    out = bytearray()
    for key, value in fields.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            out += form_part(key, item.encode())
    return bytes(out)


def form_body(
    filename: str | bytes,
    data: bytes,
    *,
    overrides: Mapping[str, FieldValue] | None = None,
    content_type: str | None = FILE_CONTENT_TYPE,
) -> bytes:
    """A complete legacy upload body: `twine_fields` with `overrides` applied (a new value
    replaces, None removes, a list repeats the field; new fields come last), then the `content`
    file part holding `data` (declared `content_type`, no Content-Type line when None), then
    the closing line.

    `filename` may be raw bytes (control characters, invalid UTF-8); the fields are then
    derived from its Latin-1 reading.
    """
    shown = filename.decode("latin-1") if isinstance(filename, bytes) else filename
    raw_name = filename if isinstance(filename, bytes) else filename.encode()
    fields: dict[str, FieldValue] = {**twine_fields(shown, data), **(overrides or {})}
    return field_parts(fields) + form_part("content", data, raw_name, content_type) + form_end()


def upload_bytes(
    url: str,
    filename: str | bytes,
    data: bytes,
    *,
    overrides: Mapping[str, FieldValue] | None = None,
    auth: tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    content_type: str | None = FILE_CONTENT_TYPE,
) -> httpx.Response:
    """POST `form_body(filename, data, overrides=..., content_type=...)` to exactly `url` and
    return the response.

    `auth` is sent as Basic credentials (None: anonymous unless `headers` carry an
    Authorization). Uses `client` when given (its timeout applies, and with `auth` None its
    own auth, if any), else a one-off request with a 60 s timeout. Never raises for an HTTP
    status; the caller asserts.
    """
    body = form_body(filename, data, overrides=overrides, content_type=content_type)
    all_headers = {"Content-Type": FORM_CONTENT_TYPE, **(headers or {})}
    if client is not None:
        client_auth = httpx.USE_CLIENT_DEFAULT if auth is None else auth
        return client.post(url, content=body, headers=all_headers, auth=client_auth)
    return httpx.post(url, content=body, headers=all_headers, auth=auth, timeout=60)


def upload_file(
    url: str,
    path: Path,
    *,
    overrides: Mapping[str, FieldValue] | None = None,
    auth: tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    content_type: str | None = FILE_CONTENT_TYPE,
) -> httpx.Response:
    """`upload_bytes` of the file at `path` under its own name."""
    return upload_bytes(
        url,
        path.name,
        path.read_bytes(),
        overrides=overrides,
        auth=auth,
        headers=headers,
        client=client,
        content_type=content_type,
    )
