"""PyPI's legacy XML-RPC API: `search` and `list_packages`, which `pip search` and older tools
call at an index's `/pypi` (https://warehouse.pypa.io/api-reference/xml-rpc.html).

Answered from the same search as `GET /api/v1/search` (`shared.domain.search`), over the
hosted repositories behind the URL that the caller may read: the repository itself, or a
group's hosted members; a proxy has nothing to search. The request is hostile input: at most
`MAX_BODY` bytes, parsed by defusedxml (no DTD, no entity expansion, no external references),
at most `MAX_DEPTH` nested values and `MAX_TERMS` search terms. Every malformed call is
answered with an XML-RPC fault (HTTP 200, as the XML-RPC specification has it: the fault is
the method's answer) whose message says what was wrong.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from packaging.utils import canonicalize_name
from sqlmodel.ext.asyncio.session import AsyncSession

from wheelyard.shared.auth.principal import Principal
from wheelyard.shared.domain.search import SearchHit, project_names, search_projects

#: The largest request body read (a search names a few words).
MAX_BODY = 64 * 1024
#: How deeply values may nest (a search spec is a struct of arrays: depth 3).
MAX_DEPTH = 8
#: The most search terms one call may carry, and the longest term.
MAX_TERMS = 16
MAX_TERM_LENGTH = 200
#: The fields `search` understands (pip sends exactly these).
SEARCH_FIELDS = ("name", "summary")

MEDIA_TYPES = ("text/xml", "application/xml")


class Fault(Exception):
    """A call that cannot be answered; becomes an XML-RPC fault response."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    """A parsed `methodCall`: the method's name and its positional parameters."""

    method: str
    params: list[Any]


def parse_call(body: bytes) -> Call:
    """The call in `body` (an XML-RPC `methodCall` document), or a Fault saying what is wrong."""
    try:
        root = fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise Fault(xmlrpc.client.PARSE_ERROR, f"refused XML: {exc}") from exc
    except ParseError as exc:
        raise Fault(xmlrpc.client.PARSE_ERROR, f"not well-formed XML: {exc}") from exc
    if root.tag != "methodCall":
        raise Fault(xmlrpc.client.INVALID_XMLRPC, "expected a <methodCall> document")
    method = (root.findtext("methodName") or "").strip()
    if not method:
        raise Fault(xmlrpc.client.INVALID_XMLRPC, "the call names no <methodName>")
    params = []
    for param in root.findall("params/param"):
        value = param.find("value")
        if value is None:
            raise Fault(xmlrpc.client.INVALID_XMLRPC, "a <param> without a <value>")
        params.append(_value(value, 1))
    return Call(method, params)


def _value(element: Element, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise Fault(xmlrpc.client.INVALID_XMLRPC, f"values nest deeper than {MAX_DEPTH}")
    children = list(element)
    if not children:
        return element.text or ""  # a bare <value>text</value> is a string
    typed = children[0]
    text = (typed.text or "").strip()
    try:
        if typed.tag == "string":
            return typed.text or ""
        if typed.tag in ("int", "i4", "i8"):
            return int(text)
        if typed.tag == "boolean":
            if text not in ("0", "1"):
                raise ValueError(text)
            return text == "1"
        if typed.tag == "double":
            return float(text)
    except ValueError as exc:
        raise Fault(xmlrpc.client.INVALID_XMLRPC, f"not a valid <{typed.tag}>: {text!r}") from exc
    if typed.tag == "nil":
        return None
    if typed.tag == "array":
        return [_value(v, depth + 1) for v in typed.findall("data/value")]
    if typed.tag == "struct":
        members = {}
        for member in typed.findall("member"):
            name, value = member.findtext("name"), member.find("value")
            if name is None or value is None:
                raise Fault(
                    xmlrpc.client.INVALID_XMLRPC, "a struct <member> needs a name and a value"
                )
            members[name] = _value(value, depth + 1)
        return members
    raise Fault(xmlrpc.client.INVALID_XMLRPC, f"unsupported value type <{typed.tag}>")


def fault_response(fault: Fault) -> bytes:
    """The XML-RPC fault document for `fault`."""
    return xmlrpc.client.dumps(xmlrpc.client.Fault(fault.code, fault.message)).encode()


def result_response(result: Any) -> bytes:
    """The XML-RPC response document carrying `result`."""
    return xmlrpc.client.dumps((result,), methodresponse=True).encode()


async def answer(
    session: AsyncSession, principal: Principal, within: Iterable[str], call: Call
) -> Any:
    """The result of `call` over the hosted repositories `within` (`storage/name`, in order of
    precedence), as `principal` may see them."""
    scope = list(within)
    if call.method == "list_packages":
        if call.params:
            raise Fault(xmlrpc.client.INVALID_METHOD_PARAMS, "list_packages takes no parameters")
        return await project_names(session, principal=principal, within=scope)
    if call.method == "search":
        spec, operator = _search_params(call.params)
        return await _search(session, principal, scope, spec, operator)
    raise Fault(
        xmlrpc.client.METHOD_NOT_FOUND,
        f"method {call.method!r} is not supported here (only search and list_packages)",
    )


def _search_params(params: list[Any]) -> tuple[dict[str, list[str]], str]:
    usage = "search(spec, operator): spec a struct of name/summary to strings, operator and|or"
    if not 1 <= len(params) <= 2 or not isinstance(params[0], dict):
        raise Fault(xmlrpc.client.INVALID_METHOD_PARAMS, usage)
    operator = params[1] if len(params) == 2 else "and"
    if operator not in ("and", "or"):
        raise Fault(xmlrpc.client.INVALID_METHOD_PARAMS, f"operator must be 'and' or 'or': {usage}")
    spec: dict[str, list[str]] = {}
    count = 0
    for field, wanted in params[0].items():
        if field not in SEARCH_FIELDS:
            raise Fault(
                xmlrpc.client.INVALID_METHOD_PARAMS,
                f"cannot search by {field!r}: only by {' and '.join(SEARCH_FIELDS)}",
            )
        terms = wanted if isinstance(wanted, list) else [wanted]
        if not all(isinstance(t, str) for t in terms):
            raise Fault(xmlrpc.client.INVALID_METHOD_PARAMS, f"{field}: give strings: {usage}")
        terms = [t.strip() for t in terms if t.strip()]
        if any(len(t) > MAX_TERM_LENGTH for t in terms):
            raise Fault(
                xmlrpc.client.INVALID_METHOD_PARAMS,
                f"a search term is longer than {MAX_TERM_LENGTH} characters",
            )
        count += len(terms)
        spec[field] = terms
    if count > MAX_TERMS:
        raise Fault(xmlrpc.client.INVALID_METHOD_PARAMS, f"more than {MAX_TERMS} search terms")
    return spec, operator


def _matches(hit: SearchHit, field: str, term: str) -> bool:
    if field == "name":
        return canonicalize_name(term) in hit.normalized_name
    return term.lower() in (hit.summary or "").lower()


async def _search(
    session: AsyncSession,
    principal: Principal,
    within: list[str],
    spec: dict[str, list[str]],
    operator: str,
) -> list[dict[str, Any]]:
    # One search per term, each the API's (ranked, limited, private repositories left out);
    # a project is then one hit per name: the first repository of `within` that has it.
    precedence = {path: index for index, path in enumerate(within)}
    found: dict[str, SearchHit] = {}
    matched: list[set[str]] = []
    for field, terms in spec.items():
        for term in terms:
            names = set()
            hits = await search_projects(session, principal=principal, query=term, within=within)
            for hit in hits:
                if not _matches(hit, field, term):
                    continue
                names.add(hit.normalized_name)
                known = found.get(hit.normalized_name)
                if known is None or precedence[hit.repository] < precedence[known.repository]:
                    found[hit.normalized_name] = hit
            matched.append(names)
    if not matched:
        return []
    chosen = set.union(*matched) if operator == "or" else set.intersection(*matched)
    return [
        {
            "name": hit.name,
            "version": hit.version,
            "summary": hit.summary or "",
            "_pypi_ordering": 0,
        }
        for hit in sorted((found[n] for n in chosen), key=lambda h: h.normalized_name)
    ]
