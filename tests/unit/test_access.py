"""The access rules: levels, visibility, token scope and repositories, group members."""

from __future__ import annotations

import pytest

from wheelyard.shared.auth.access import allowed, denial, missing, require_read, require_write
from wheelyard.shared.auth.principal import ANONYMOUS, Principal
from wheelyard.shared.domain.repositories import RepositoryView
from wheelyard.shared.errors import Forbidden, NotFound, Unauthenticated


def repo(name: str, visibility: str = "public") -> RepositoryView:
    return RepositoryView(
        id=1,
        storage="default",
        name=name,
        type="hosted",
        visibility=visibility,
        ttl=None,
        settings={},
    )


PUBLIC, PRIVATE = repo("pub"), repo("priv", "private")
alice = Principal(username="alice", user_id=2, permissions=(("default/priv", "write"),))
admin = Principal(username="root", user_id=1, is_admin=True)


def token(principal: Principal, scope: str, *repos: str) -> Principal:
    return Principal(
        username=principal.username,
        user_id=principal.user_id,
        is_admin=principal.is_admin,
        permissions=principal.permissions,
        token_id=9,
        token_scope=scope,
        token_repositories=frozenset(repos),
    )


@pytest.mark.parametrize(
    ("who", "target", "level", "expected"),
    [
        (ANONYMOUS, PUBLIC, "read", True),
        (ANONYMOUS, PUBLIC, "write", False),
        (ANONYMOUS, PRIVATE, "read", False),
        (alice, PRIVATE, "read", True),
        (alice, PRIVATE, "write", True),
        (alice, PRIVATE, "admin", False),
        (alice, PUBLIC, "write", False),
        (admin, PRIVATE, "admin", True),
        (token(alice, "read", "default/priv"), PRIVATE, "read", True),
        (token(alice, "read", "default/priv"), PRIVATE, "write", False),
        (token(alice, "write", "default/priv"), PRIVATE, "write", True),
        (token(alice, "write", "default/other"), PRIVATE, "read", False),
        # Anonymous rights are the floor: a token that does not name a public repository
        # still reads it (issue 9), and writes nowhere it does not name.
        (token(alice, "write", "default/priv"), PUBLIC, "read", True),
        (token(admin, "write", "default/priv"), PUBLIC, "write", False),
        (token(admin, "read", "default/priv"), PRIVATE, "write", False),
        (token(admin, "write", "default/pub"), PRIVATE, "read", False),
    ],
)
def test_levels_visibility_and_token_limits(
    who: Principal, target: RepositoryView, level: str, expected: bool
) -> None:
    assert allowed(who, target, level) is expected


def test_group_members_are_checked_against_the_user_not_the_token() -> None:
    group = repo("all")
    through_group = token(alice, "read", "default/all")
    assert allowed(through_group, PRIVATE, "read", group=group)
    assert not allowed(through_group, PRIVATE, "write", group=group)
    assert not allowed(token(ANONYMOUS, "read", "default/all"), PRIVATE, "read", group=group)


def test_a_token_reading_a_public_group_it_does_not_name_gets_what_anonymous_gets() -> None:
    # The floor opens the public group itself, not the private members the user could read:
    # those stay behind the token's own list.
    group = repo("all")
    local_only = token(alice, "read", "default/local")
    assert allowed(local_only, group, "read")
    assert allowed(local_only, PUBLIC, "read", group=group)
    assert not allowed(local_only, PRIVATE, "read", group=group)
    assert allowed(alice, PRIVATE, "read", group=group)


@pytest.mark.parametrize("level", ["read", "write", "admin"])
@pytest.mark.parametrize(
    "who",
    [
        alice,
        admin,
        Principal(username="bob", user_id=3),
        token(alice, "read", "default/priv"),
        token(alice, "write", "default/other"),
        token(admin, "read", "default/pub"),
    ],
)
@pytest.mark.parametrize("target", [PUBLIC, PRIVATE])
def test_no_credential_has_fewer_rights_than_anonymous(
    who: Principal, target: RepositoryView, level: str
) -> None:
    if allowed(ANONYMOUS, target, level):
        assert allowed(who, target, level)
        require_read(who, target) if level == "read" else None


def test_refusals_of_missing_and_unreadable_private_repositories_are_the_same() -> None:
    bob = Principal(username="bob", user_id=3)
    bobs_token = token(bob, "write", "default/pub")
    for who in (ANONYMOUS, bob, bobs_token):
        for level in ("read", "write", "admin"):
            hidden = denial(who, PRIVATE, level)
            absent = missing(who, PRIVATE.path)
            assert (type(hidden), hidden.message) == (type(absent), absent.message)


def test_errors_say_401_403_or_404_as_the_caller_may_know() -> None:
    with pytest.raises(Unauthenticated):
        require_read(ANONYMOUS, PRIVATE)
    bob = Principal(username="bob", user_id=3)
    with pytest.raises(NotFound):
        require_read(bob, PRIVATE)  # existence hidden
    with pytest.raises(Forbidden):
        require_write(bob, PUBLIC)
    with pytest.raises(Forbidden, match="read-only"):
        require_write(token(alice, "read", "default/priv"), PRIVATE)
    with pytest.raises(Unauthenticated):
        require_write(ANONYMOUS, PUBLIC)
