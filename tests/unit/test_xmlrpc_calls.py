"""The XML-RPC call parser and argument checks (`wheelyard.index.xmlrpc`), without a server:
what pip sends parses to what it means, and hostile documents are refused as faults."""

from __future__ import annotations

import xmlrpc.client

import pytest

from wheelyard.index import xmlrpc as rpc


def test_the_call_pip_search_sends_parses_to_its_values() -> None:
    body = xmlrpc.client.dumps(({"name": ["a", "b"], "summary": ["a", "b"]}, "or"), "search")
    call = rpc.parse_call(body.encode())
    assert call == rpc.Call("search", [{"name": ["a", "b"], "summary": ["a", "b"]}, "or"])


def test_every_scalar_type_parses() -> None:
    values = (1, True, 2.5, "text", None, [1, [2]], {"k": "v"})
    body = xmlrpc.client.dumps(values, "m", allow_none=True)
    assert rpc.parse_call(body.encode()).params == list(values)


def test_a_fault_document_round_trips_through_the_standard_client() -> None:
    document = rpc.fault_response(rpc.Fault(xmlrpc.client.INVALID_XMLRPC, "what was wrong"))
    with pytest.raises(xmlrpc.client.Fault) as raised:
        xmlrpc.client.loads(document)
    assert raised.value.faultCode == xmlrpc.client.INVALID_XMLRPC
    assert raised.value.faultString == "what was wrong"


def test_a_result_document_round_trips() -> None:
    hits = [{"name": "x", "version": "1.0", "summary": "", "_pypi_ordering": 0}]
    assert xmlrpc.client.loads(rpc.result_response(hits))[0] == (hits,)


@pytest.mark.parametrize(
    "body",
    [
        # An external entity: never resolved (defusedxml refuses the DTD).
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<methodCall><methodName>&e;</methodName></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param/></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><base64>eA==</base64>"
        b"</value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><boolean>2</boolean>"
        b"</value></param></params></methodCall>",
    ],
)
def test_hostile_or_unsupported_documents_are_faults(body: bytes) -> None:
    with pytest.raises(rpc.Fault):
        rpc.parse_call(body)
