"""`parse_upload_form`: the streaming parser of the legacy upload form, in process.

Bodies come from the `wheelyard.testing.uploads` factory (the form twine sends) or are built
from its parts; they are fed in chunks of several sizes, since the parser must not depend on
where the chunks split the body. The spool is a real `Spool` in the test's tmp dir.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest

from wheelyard.shared.errors import InvalidInput, TooLarge
from wheelyard.testing.uploads import (
    FORM_CONTENT_TYPE,
    field_parts,
    form_body,
    form_end,
    form_part,
    twine_fields,
)
from wheelyard.upload import multipart
from wheelyard.upload.multipart import (
    MAX_FIELDS,
    MAX_FRAMING_BYTES,
    UploadBody,
    boundary_of,
    parse_upload_form,
)
from wheelyard.upload.spool import Spool

FILENAME = "demo-1.0-py3-none-any.whl"
DATA = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n" + b"tail"
CHUNK_SIZES = [1, 7, 4096, 1 << 30]


async def chunks(*pieces: bytes, size: int = 1 << 30) -> AsyncIterator[bytes]:
    """Each piece in chunks of at most `size` bytes (a piece never shares a chunk)."""
    for piece in pieces:
        for start in range(0, len(piece), size):
            yield piece[start : start + size]


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def make_spool(spool_dir: Path) -> Callable[[], Spool]:
    return lambda: Spool(spool_dir, max_size=1024 * 1024)


async def parse(
    stream: AsyncIterator[bytes],
    make_spool: Callable[[], Spool],
    content_type: str = FORM_CONTENT_TYPE,
) -> UploadBody:
    return await parse_upload_form(stream, content_type, make_spool)


def leftover(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.iterdir()) if spool_dir.exists() else []


# -- what a good form yields -------------------------------------------------------------------


@pytest.mark.parametrize("size", CHUNK_SIZES)
async def test_fields_and_the_file_part(
    make_spool: Callable[[], Spool], spool_dir: Path, size: int
) -> None:
    body = await parse(chunks(form_body(FILENAME, DATA), size=size), make_spool)

    expected = {key: [value] for key, value in twine_fields(FILENAME, DATA).items()}
    assert body.fields == expected
    assert body.filename == FILENAME
    assert body.content_type == "application/octet-stream"
    assert body.spool is not None
    assert body.spool.size == len(DATA)
    assert body.spool.path.read_bytes() == DATA
    assert body.spool.sha256 == hashlib.sha256(DATA).hexdigest()
    assert body.spool.path.parent == spool_dir
    body.spool.discard()


async def test_a_file_part_without_content_type(make_spool: Callable[[], Spool]) -> None:
    body = await parse(chunks(form_body(FILENAME, DATA, content_type=None)), make_spool)

    assert body.content_type is None
    assert body.spool is not None and body.spool.path.read_bytes() == DATA
    body.spool.discard()


@pytest.mark.parametrize("size", [1, 4096])
async def test_repeated_names_are_kept_in_order(make_spool: Callable[[], Spool], size: int) -> None:
    classifiers = ["Programming Language :: Python", "License :: OSI Approved", ""]
    stream = chunks(form_body(FILENAME, DATA, overrides={"classifiers": classifiers}), size=size)

    body = await parse(stream, make_spool)

    assert body.fields["classifiers"] == classifiers
    assert body.spool is not None
    body.spool.discard()


async def test_non_ascii_field_values_are_decoded(make_spool: Callable[[], Spool]) -> None:
    summary = "Zürich ✓ 東京"
    body = await parse(
        chunks(form_body(FILENAME, DATA, overrides={"summary": summary}), size=3), make_spool
    )

    assert body.fields["summary"] == [summary]
    assert body.spool is not None
    body.spool.discard()


async def test_an_ignored_file_part_is_dropped(make_spool: Callable[[], Spool]) -> None:
    signature = form_part("gpg_signature", b"-----BEGIN PGP SIGNATURE-----", b"x.asc")
    body_bytes = field_parts(twine_fields(FILENAME, DATA)) + signature
    body_bytes += form_part("content", DATA, FILENAME.encode()) + form_end()

    body = await parse(chunks(body_bytes), make_spool)

    assert "gpg_signature" not in body.fields
    assert body.spool is not None and body.spool.path.read_bytes() == DATA
    body.spool.discard()


# -- limits ------------------------------------------------------------------------------------


def with_extra_parts(extra: Iterable[bytes]) -> bytes:
    fields = field_parts(twine_fields(FILENAME, DATA))
    content = form_part("content", DATA, FILENAME.encode(), "application/octet-stream")
    return fields + b"".join(extra) + content + form_end()


async def test_exactly_max_fields_parts_are_accepted(make_spool: Callable[[], Spool]) -> None:
    own = len(twine_fields(FILENAME, DATA)) + 1  # the fields and the file part
    body_bytes = with_extra_parts(form_part("comment", b"") for _ in range(MAX_FIELDS - own))

    body = await parse(chunks(body_bytes, size=65536), make_spool)

    assert len(body.fields["comment"]) == MAX_FIELDS - own
    assert body.spool is not None
    body.spool.discard()


@pytest.mark.parametrize("same_name", [True, False], ids=["repeated-name", "distinct-names"])
async def test_one_part_more_than_max_fields_is_refused(
    make_spool: Callable[[], Spool], spool_dir: Path, same_name: bool
) -> None:
    own = len(twine_fields(FILENAME, DATA)) + 1
    names = ["comment" if same_name else f"f{i}" for i in range(MAX_FIELDS - own + 1)]
    body_bytes = with_extra_parts(form_part(name, b"") for name in names)

    with pytest.raises(InvalidInput, match="Too many form fields"):
        await parse(chunks(body_bytes, size=65536), make_spool)
    assert leftover(spool_dir) == []


async def test_a_field_of_the_largest_size_is_accepted_and_one_byte_more_refused(
    make_spool: Callable[[], Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multipart, "MAX_FIELD_BYTES", 1000)
    body = await parse(
        chunks(form_body(FILENAME, DATA, overrides={"description": "d" * 1000})), make_spool
    )
    assert body.fields["description"] == ["d" * 1000]
    assert body.spool is not None
    body.spool.discard()

    with pytest.raises(TooLarge, match="'description' is too large"):
        await parse(
            chunks(form_body(FILENAME, DATA, overrides={"description": "d" * 1001})), make_spool
        )


async def test_all_fields_together_have_a_limit(
    make_spool: Callable[[], Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multipart, "MAX_FIELDS_TOTAL", 4000)
    parts = [form_part(f"f{i}", b"x" * 900) for i in range(5)]  # each small, 4500 together

    with pytest.raises(TooLarge, match="too large"):
        await parse(chunks(with_extra_parts(parts), size=512), make_spool)


async def test_an_ignored_file_part_counts_against_the_field_limit(
    make_spool: Callable[[], Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multipart, "MAX_FIELD_BYTES", 1000)
    signature = form_part("gpg_signature", b"A" * 1001, b"x.asc")

    with pytest.raises(TooLarge, match="gpg_signature"):
        await parse(chunks(with_extra_parts([signature])), make_spool)


async def test_a_file_over_the_spool_limit_is_refused_and_discarded(spool_dir: Path) -> None:
    def small_spool() -> Spool:
        return Spool(spool_dir, max_size=len(DATA) - 1)

    with pytest.raises(TooLarge, match="File too large"):
        await parse(chunks(form_body(FILENAME, DATA), size=1024), small_spool)
    assert leftover(spool_dir) == []


async def test_a_short_preamble_and_epilogue_are_fine(make_spool: Callable[[], Spool]) -> None:
    stream = chunks(b"\r\n", form_body(FILENAME, DATA), b"\r\n", size=4096)

    body = await parse(stream, make_spool)

    assert body.spool is not None and body.spool.path.read_bytes() == DATA
    body.spool.discard()


async def test_a_preamble_longer_than_the_framing_limit_is_refused(
    make_spool: Callable[[], Spool], spool_dir: Path
) -> None:
    preamble = b"\r\n" * (MAX_FRAMING_BYTES // 2 + 1)

    with pytest.raises(InvalidInput, match="no part after the preamble"):
        await parse(chunks(preamble, form_body(FILENAME, DATA), size=4096), make_spool)
    assert leftover(spool_dir) == []


async def test_an_epilogue_longer_than_the_framing_limit_is_refused(
    make_spool: Callable[[], Spool], spool_dir: Path
) -> None:
    epilogue = b"\r\n" * (MAX_FRAMING_BYTES // 2 + 1)

    with pytest.raises(InvalidInput, match="after the end of the form"):
        await parse(chunks(form_body(FILENAME, DATA), epilogue, size=4096), make_spool)
    assert leftover(spool_dir) == []


# -- malformed forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "text/plain; boundary=wheelyard-test-boundary",
        "multipart/mixed; boundary=wheelyard-test-boundary",
        "",
    ],
)
async def test_a_body_that_is_not_multipart_form_data_is_refused(
    make_spool: Callable[[], Spool], spool_dir: Path, content_type: str
) -> None:
    with pytest.raises(InvalidInput, match="must be multipart/form-data"):
        await parse(chunks(form_body(FILENAME, DATA)), make_spool, content_type)
    assert leftover(spool_dir) == []


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary="])
async def test_a_form_without_a_boundary_is_refused(
    make_spool: Callable[[], Spool], content_type: str
) -> None:
    with pytest.raises(InvalidInput, match="must be multipart/form-data"):
        await parse(chunks(form_body(FILENAME, DATA)), make_spool, content_type)


def test_boundary_of_reads_the_parameter() -> None:
    assert boundary_of(FORM_CONTENT_TYPE) == b"wheelyard-test-boundary"
    assert boundary_of('multipart/form-data; boundary="quoted"; charset=utf-8') == b"quoted"


@pytest.mark.parametrize("cut", [10, 200, -len(DATA) // 2, -3])
async def test_a_truncated_body_is_refused_and_its_spool_discarded(
    make_spool: Callable[[], Spool], spool_dir: Path, cut: int
) -> None:
    whole = form_body(FILENAME, DATA)
    end = cut if cut > 0 else len(whole) + cut

    with pytest.raises(InvalidInput, match="ended before the form was complete"):
        await parse(chunks(whole[:end], size=512), make_spool)
    assert leftover(spool_dir) == []


async def test_an_empty_body_is_refused(make_spool: Callable[[], Spool]) -> None:
    with pytest.raises(InvalidInput):
        await parse(chunks(b""), make_spool)


async def test_a_form_without_a_file_is_refused(make_spool: Callable[[], Spool]) -> None:
    body_bytes = field_parts(twine_fields(FILENAME, DATA)) + form_end()

    with pytest.raises(InvalidInput, match="no 'content' file part"):
        await parse(chunks(body_bytes), make_spool)


async def test_two_files_are_refused(make_spool: Callable[[], Spool], spool_dir: Path) -> None:
    second = form_part("content", b"second", b"other.whl", "application/octet-stream")

    with pytest.raises(InvalidInput, match="Exactly one file"):
        await parse(chunks(with_extra_parts([second])), make_spool)
    assert leftover(spool_dir) == []


async def test_content_sent_as_a_text_field_is_refused(make_spool: Callable[[], Spool]) -> None:
    body_bytes = field_parts(twine_fields(FILENAME, DATA)) + form_part("content", DATA)

    with pytest.raises(InvalidInput, match="must be a file upload"):
        await parse(chunks(body_bytes + form_end()), make_spool)


async def test_a_metadata_field_sent_as_a_file_is_refused(make_spool: Callable[[], Spool]) -> None:
    as_file = form_part("summary", b"text", b"summary.txt")

    with pytest.raises(InvalidInput, match="summary: Should not be a tuple"):
        await parse(chunks(with_extra_parts([as_file])), make_spool)


async def test_a_part_without_a_name_is_refused(make_spool: Callable[[], Spool]) -> None:
    nameless = b"--wheelyard-test-boundary\r\nContent-Disposition: form-data\r\n\r\nx\r\n"

    with pytest.raises(InvalidInput, match="Content-Disposition with a name"):
        await parse(chunks(with_extra_parts([nameless])), make_spool)


async def test_a_field_that_is_not_utf8_is_refused(make_spool: Callable[[], Spool]) -> None:
    with pytest.raises(InvalidInput, match="'summary' is not valid UTF-8"):
        await parse(chunks(with_extra_parts([form_part("summary", b"\xff\xfe")])), make_spool)
