"""Where upstream requests may go (SSRF guard shared by the API and the proxy)."""

from __future__ import annotations

import pytest

from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.netpolicy import address_problem, check_upstream_url, is_internal


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "fe80::1", "0.0.0.0", "224.0.0.1"],
)
def test_metadata_link_local_and_non_unicast_are_always_refused(address: str) -> None:
    assert address_problem(address, allow_private=True) is not None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "::ffff:127.0.0.1", "100.64.1.1"])
def test_internal_addresses_need_the_operators_consent(address: str) -> None:
    assert is_internal(address)
    assert "WHEELYARD_ALLOW_PRIVATE_UPSTREAMS" in (
        address_problem(address, allow_private=False) or ""
    )
    assert address_problem(address, allow_private=True) is None


def test_public_addresses_are_fine() -> None:
    assert address_problem("151.101.0.223", allow_private=False) is None


async def test_upstream_urls_are_checked_after_resolving() -> None:
    with pytest.raises(InvalidInput, match="private or loopback"):
        await check_upstream_url("http://localhost:8080/simple/", allow_private=False)
    with pytest.raises(InvalidInput, match="http"):
        await check_upstream_url("file:///etc/passwd", allow_private=True)
    await check_upstream_url("http://127.0.0.1:8080/simple/", allow_private=True)
