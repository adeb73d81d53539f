"""Streaming parser for the legacy upload form (multipart/form-data).

Starlette's `request.form()` would spool every part with limits that do not fit a package
upload, so the body is fed to python-multipart's low-level parser as it arrives: the `content`
part goes straight into a Spool (bounded memory, size limit enforced while streaming), the
other fields are collected with limits on their count and size (Starlette/python-multipart
CVE-2023-30798 and CVE-2024-47874 were about exactly those). Every byte of the body counts
against some limit, so a chunked body cannot stream forever: parts (repeated names included),
ignored file parts, and the preamble and epilogue around the parts (python-multipart
CVE-2024-53981 was about those two).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from wheelyard.shared.errors import InvalidInput, TooLarge
from wheelyard.upload.spool import Spool

MAX_FIELDS = 1000  # form parts of any kind, repeated names counted each time
MAX_FIELD_BYTES = 8 * 1024 * 1024  # a long README in `description`
MAX_FIELDS_TOTAL = 16 * 1024 * 1024
FILE_FIELD = "content"
IGNORED_FILE_FIELDS = {"gpg_signature"}
#: Bytes allowed before the first part and after the closing boundary. RFC 2046 permits a
#: preamble and an epilogue; no upload client sends more than a CRLF, and python-multipart
#: skips them without counting, so without this a chunked body could run on forever.
MAX_FRAMING_BYTES = 64 * 1024


@dataclass
class UploadBody:
    """What the form carried: text fields (repeated names kept in order) and the file."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    filename: str | None = None
    content_type: str | None = None
    spool: Spool | None = None


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary of a Content-Type header; InvalidInput if it is not a form."""
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidInput("Uploads must be multipart/form-data (the legacy upload API).")
    return params[b"boundary"]


class _State:
    def __init__(self, body: UploadBody, make_spool: Callable[[], Spool]) -> None:
        self.body = body
        self.make_spool = make_spool
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name: str | None = None
        self.is_file = False
        self.buffer = bytearray()
        self.total_field_bytes = 0
        self.part_bytes = 0
        self.parts = 0
        self.started = False
        self.file_chunks: list[bytes] = []
        self.error: Exception | None = None
        self.ended = False


async def parse_upload_form(
    stream: AsyncIterator[bytes], content_type: str, spool_factory: Callable[[], Spool]
) -> UploadBody:
    """Parse the form from `stream`; `spool_factory()` makes the Spool for the file part.

    Raises InvalidInput for malformed forms, duplicate or non-file `content` parts and too many
    fields, TooLarge for oversized fields or files. On error the spool (if any) is discarded.
    """
    body = UploadBody()
    st = _State(body, spool_factory)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        st.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        st.header_value += data[start:end]

    def on_header_end() -> None:
        st.headers[st.header_field.lower()] = st.header_value
        st.header_field = st.header_value = b""

    def on_part_begin() -> None:
        st.started = True

    def on_headers_finished() -> None:
        disposition, params = parse_options_header(st.headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            st.error = InvalidInput("Every form part needs a Content-Disposition with a name.")
            return
        st.parts += 1
        if st.parts > MAX_FIELDS:
            st.error = InvalidInput(f"Too many form fields (limit {MAX_FIELDS}).")
            return
        st.name = params[b"name"].decode("utf-8", "replace")
        st.is_file = b"filename" in params
        if st.name == FILE_FIELD:
            if not st.is_file:
                st.error = InvalidInput("The 'content' part must be a file upload.")
            elif body.spool is not None:
                st.error = InvalidInput("Exactly one file may be uploaded per request.")
            else:
                body.filename = params[b"filename"].decode("utf-8", "replace")
                ctype = st.headers.get(b"content-type")
                body.content_type = ctype.decode("latin-1") if ctype else None
                body.spool = st.make_spool()
        elif st.is_file and st.name not in IGNORED_FILE_FIELDS:
            # PyPI: "<field>: Should not be a tuple." A metadata field sent as a file.
            st.error = InvalidInput(f"{st.name}: Should not be a tuple.")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if st.error:
            return
        if st.name == FILE_FIELD:
            st.file_chunks.append(bytes(data[start:end]))
            return
        st.part_bytes += end - start
        st.total_field_bytes += end - start
        if st.part_bytes > MAX_FIELD_BYTES or st.total_field_bytes > MAX_FIELDS_TOTAL:
            st.error = TooLarge(f"Form field '{st.name}' is too large.")
        elif not st.is_file:  # an ignored file part (gpg_signature) is counted, not kept
            st.buffer += data[start:end]

    def on_part_end() -> None:
        if st.error is None and st.name and st.name != FILE_FIELD and not st.is_file:
            try:
                value = st.buffer.decode("utf-8")
            except UnicodeDecodeError:
                st.error = InvalidInput(f"Form field '{st.name}' is not valid UTF-8.")
                return
            body.fields.setdefault(st.name, []).append(value)
        st.buffer = bytearray()
        st.part_bytes = 0
        st.headers = {}
        st.name = None
        st.is_file = False

    def on_end() -> None:
        st.ended = True

    parser = MultipartParser(
        boundary_of(content_type),
        callbacks={
            "on_end": on_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    preamble = epilogue = 0
    try:
        async for chunk in stream:
            if st.ended:
                epilogue += len(chunk)
                if epilogue > MAX_FRAMING_BYTES:
                    raise InvalidInput("Unexpected data after the end of the form.")
                continue
            try:
                parser.write(chunk)
            except Exception as exc:  # python-multipart raises its own error types
                raise InvalidInput(f"Malformed multipart body: {exc}") from exc
            if st.error:
                raise st.error
            if not st.started:
                preamble += len(chunk)
                if preamble > MAX_FRAMING_BYTES:
                    raise InvalidInput("Malformed multipart body: no part after the preamble.")
            if st.file_chunks and body.spool is not None:
                for piece in st.file_chunks:
                    await body.spool.write(piece)
                st.file_chunks.clear()
        try:
            parser.finalize()
        except Exception as exc:
            raise InvalidInput(f"Malformed multipart body: {exc}") from exc
        if st.error:
            raise st.error
        if not st.ended:
            raise InvalidInput("The upload ended before the form was complete.")
        if body.spool is None:
            raise InvalidInput("The upload has no 'content' file part.")
        await body.spool.finish()
        return body
    except BaseException:
        if body.spool is not None:
            body.spool.discard()
        raise
