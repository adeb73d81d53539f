"""The test harness's `free_port`: ports picked before anything binds them never repeat."""

from __future__ import annotations

import socket

from wheelyard.testing.tcp_proxy import free_port


def test_ports_handed_out_are_never_handed_out_again() -> None:
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    for port in ports[:20]:  # and nothing listens on them
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
