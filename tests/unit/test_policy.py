"""The supply-chain rules (`wheelyard.shared.domain.policy`): durations, requirement strings with
name wildcards and specifiers, per-file decisions, chains (a group on top of its members) and
pages screened by them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wheelyard.shared.domain import policy
from wheelyard.shared.packaging.simple.model import ProjectPage, SimpleFile

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=60)
NEW = NOW - timedelta(hours=1)


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("7d", 604800),
        ("36h", 129600),
        ("90m", 5400),
        ("45s", 45),
        ("1d12h", 129600),
        ("3600", 3600),
        (3600, 3600),
        (" 7D ", 604800),
        ("0", 0),
    ],
)
def test_durations(given: object, seconds: int) -> None:
    assert policy.parse_duration(given) == seconds


@pytest.mark.parametrize("given", ["7x", "", "d", "-1", -5, 1.5, True, None, "7 days", "1h7d"])
def test_bad_durations_say_what_is_accepted(given: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        policy.parse_duration(given)


def test_durations_are_shown_in_their_largest_unit() -> None:
    assert policy.format_duration(604800) == "7d"
    assert policy.format_duration(129600) == "36h"
    assert policy.format_duration(61) == "61s"


@pytest.mark.parametrize(
    ("text", "name", "version", "matches"),
    [
        ("evil-pkg", "evil-pkg", "1.0", True),
        ("Evil_Pkg", "evil-pkg", "1.0", True),
        ("evil-pkg", "evil-pkg-two", "1.0", False),
        ("requests<2.20", "requests", "2.19.1", True),
        ("requests<2.20", "requests", "2.20.0", False),
        ("*-nightly", "torch-nightly", "2.0.dev1", True),
        ("*-nightly", "nightly", "1.0", False),
        ("internal-*", "internal-tools", "0.1", True),
        ("internal_*", "internal-tools", "0.1", True),
        ("urllib3==2.2.3", "urllib3", "2.2.3", True),
        ("urllib3==2.2.3", "urllib3", "2.2.4", False),
        ("app>=2.0", "app", "2.1rc1", True),  # pre-releases are matched
        ("app>=2.0", "app", "not-a-version", False),
        ("lib?", "lib1", "1.0", True),
    ],
)
def test_requirement_strings(text: str, name: str, version: str, matches: bool) -> None:
    assert policy.parse_matcher(text).matches(name, version) is matches


@pytest.mark.parametrize(
    "text",
    ["", "==1.0", "pkg; python_version<'3'", "pkg[extra]", "pkg @ https://x/y.whl", "pkg<<1", 5],
)
def test_bad_requirement_strings_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        policy.parse_matcher(text)


def _compiled(**settings: object) -> policy.RepositoryPolicy:
    compiled = policy.compile_policy(policy.validate_settings(settings), "default/pypi")
    assert compiled is not None
    return compiled


def test_no_rules_compile_to_nothing() -> None:
    assert policy.compile_policy({}) is None
    assert policy.compile_policy({"allow_upstream": ["x"], "withheld_files": "hidden"}) is None
    assert policy.page_variant((), 0.0) == ""


def test_the_age_rule_withholds_young_files_until_they_are_old_enough() -> None:
    rules = _compiled(min_release_age="7d")
    assert rules.decide("app", "1.0", OLD, NOW).served
    young = rules.decide("app", "2.0", NEW, NOW)
    assert not young.served and young.withheld and not young.hidden
    assert young.available_at == NEW + timedelta(days=7)
    assert young.reason() == (
        "withheld by min_release_age 7d of default/pypi until "
        + (NEW + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    # A file of unknown age is as young as can be.
    assert not rules.decide("app", "2.0", None, NOW).served


def test_exemptions_lift_the_age_rule_only() -> None:
    rules = _compiled(min_release_age="7d", release_age_exempt=["app==2.0"], blocked=["app==2.0"])
    assert not rules.decide("app", "2.0", NEW, NOW).served  # blocked wins over the exemption
    rules = _compiled(min_release_age="7d", release_age_exempt=["app==2.0", "corp-*"])
    decision = rules.decide("app", "2.0", NEW, NOW)
    assert decision.served and decision.rule.startswith("release_age_exempt 'app==2.0'")
    assert rules.decide("corp-lib", "9", NEW, NOW).served
    assert not rules.decide("app", "2.1", NEW, NOW).served


def test_blocked_and_allowed() -> None:
    rules = _compiled(blocked=["evil-pkg", "requests<2.20", "*-nightly"])
    assert not rules.decide("evil-pkg", "1.0", OLD, NOW).served
    assert not rules.decide("requests", "2.19", OLD, NOW).served
    assert rules.decide("requests", "2.31", OLD, NOW).served
    assert not rules.decide("foo-nightly", "1", OLD, NOW).served
    assert rules.decide("evil-pkg", "1.0", OLD, NOW).kind == "blocked"
    curated = _compiled(allowed=["requests>=2.30", "corp-*"])
    assert curated.decide("requests", "2.31", OLD, NOW).served
    assert not curated.decide("requests", "2.29", OLD, NOW).served
    assert curated.decide("corp-x", "1", OLD, NOW).served
    refused = curated.decide("flask", "3.0", OLD, NOW)
    assert not refused.served and refused.kind == "allowed" and refused.hidden


def test_a_chain_serves_only_what_every_policy_serves() -> None:
    member = _compiled(blocked=["evil"])
    group = policy.compile_policy(
        policy.validate_settings({"min_release_age": "7d"}), "default/all"
    )
    assert group is not None
    chain = policy.chain_of(member, None, group)
    assert policy.decide(chain, "evil", "1", OLD, NOW).rule.startswith("blocked")
    assert policy.decide(chain, "app", "2", NEW, NOW).rule == "min_release_age 7d of default/all"
    assert policy.decide(chain, "app", "1", OLD, NOW).served


def test_validation_names_the_setting() -> None:
    with pytest.raises(ValueError, match="min_release_age"):
        policy.validate_settings({"min_release_age": "soon"})
    with pytest.raises(ValueError, match="blocked"):
        policy.validate_settings({"blocked": ["ok", "bad; os_name=='nt'"]})
    with pytest.raises(ValueError, match="withheld_files"):
        policy.validate_settings({"withheld_files": "gone"})
    with pytest.raises(ValueError, match="allowed"):
        policy.validate_settings({"allowed": "requests"})
    assert policy.validate_settings(
        {
            "min_release_age": "7d",
            "blocked": [" x ", "x"],
            "allowed": [],
            "withheld_files": "yanked",
        }
    ) == {"min_release_age": "7d", "blocked": ["x"]}


def _file(filename: str, uploaded: datetime, yanked: bool | str = False) -> SimpleFile:
    return SimpleFile(filename, f"/f/{filename}", "0" * 64, 1, upload_time=uploaded, yanked=yanked)


def _page() -> ProjectPage:
    files = [
        _file("app-1.0-py3-none-any.whl", OLD),
        _file("app-1.0.tar.gz", OLD),
        _file("app-2.0-py3-none-any.whl", NEW, yanked="broken"),
        _file("app-2.0.tar.gz", NEW),
    ]
    return ProjectPage(name="app", files=iter(files), versions=["1.0", "2.0"])


def test_pages_list_withheld_files_as_yanked_and_drop_their_version() -> None:
    page = policy.screen_page(_page, (_compiled(min_release_age="7d"),), NOW)
    files = list(page.files)
    assert list(page.versions) == ["1.0"]
    assert [f.filename for f in files if not f.yanked] == [
        "app-1.0-py3-none-any.whl",
        "app-1.0.tar.gz",
    ]
    withheld = {f.filename: f.yanked for f in files if f.yanked}
    assert set(withheld) == {"app-2.0-py3-none-any.whl", "app-2.0.tar.gz"}
    assert str(withheld["app-2.0.tar.gz"]).startswith("withheld by min_release_age 7d")
    assert str(withheld["app-2.0-py3-none-any.whl"]).endswith("; yanked: broken")


def test_pages_can_hide_withheld_files_and_never_list_refused_ones() -> None:
    hidden = _compiled(min_release_age="7d", withheld_files="hidden")
    page = policy.screen_page(_page, (hidden,), NOW)
    assert [f.filename for f in page.files] == ["app-1.0-py3-none-any.whl", "app-1.0.tar.gz"]
    blocked = _compiled(blocked=["app<2"])
    page = policy.screen_page(_page, (blocked,), NOW)
    assert list(page.versions) == ["2.0"]
    assert [f.filename for f in page.files] == ["app-2.0-py3-none-any.whl", "app-2.0.tar.gz"]


def test_page_variants_follow_rules_and_time() -> None:
    aged = _compiled(min_release_age="7d")
    plain = _compiled(blocked=["x"])
    assert policy.page_variant((plain,), 0) == policy.page_variant((plain,), 10_000)
    assert policy.page_variant((aged,), 0) != policy.page_variant((aged,), 10_000)
    assert policy.page_variant((aged,), 0) != policy.page_variant((plain,), 0)
