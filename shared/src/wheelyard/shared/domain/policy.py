"""Supply-chain rules of a repository: which files it lists and serves, decided file by file.

The one place the rules are evaluated; every page (hosted, proxy, group; HTML, JSON, the PyPI
JSON API), every download (files and PEP 658 `.metadata`) and the explain endpoint ask here.

A repository's settings (all optional, see docs/supply-chain.md):

- `min_release_age`: a duration (`"7d"`, `"36h"`, `"90m"`, or seconds). A file younger than
  that (its upstream's PEP 700 upload time, else the time this repository first saw it) is
  withheld until it is old enough;
- `release_age_exempt`: requirement strings (`"urllib3==2.2.3"`, `"internal-*"`) the age rule
  does not apply to;
- `blocked`: requirement strings whose files are never listed nor served;
- `allowed`: when non-empty, only files matching one of these are listed and served;
- `withheld_files`: `"yanked"` (default) lists a withheld file as yanked (PEP 592) with a
  reason naming the rule, so unpinned installs skip it and `pip install P==new` says why;
  `"hidden"` leaves it off the page.

A requirement string is a PEP 508 requirement without extras, markers or URL whose name may
hold the wildcards `*` and `?`, matched on the PEP 503 normalized name; its specifier (if
any) must contain the file's version (pre-releases included).

A group applies its own rules on top of its members': a file is served only if every policy of
its chain (member, then group) serves it. A project whose PEP 792 status is `quarantined`
serves nothing. Nothing here costs anything for a repository without rules: `compile_policy`
returns None and callers skip the checks.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from wheelyard.shared.packaging.filenames import listed_version
from wheelyard.shared.packaging.simple.model import ProjectPage, SimpleFile

#: The settings keys this module owns (stored in `Repository.settings`).
SETTING_KEYS = ("min_release_age", "release_age_exempt", "blocked", "allowed", "withheld_files")
WITHHELD_MODES = ("yanked", "hidden")
#: The longest age accepted (ten years): anything longer is a typo.
MAX_AGE = 10 * 365 * 86400
#: Requirement strings per list, and characters per string.
MAX_ENTRIES = 1000
MAX_ENTRY_LENGTH = 300
#: Pages of repositories with an age rule are re-rendered at least this often (seconds), so a
#: withheld file appears at most this late after it becomes available.
AGE_GRANULARITY = 60

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?\Z")
_NAME_GLOB = re.compile(r"^[A-Za-z0-9*?._-]+")
_SEPARATORS = re.compile(r"[-_.]+")


def parse_duration(value: object) -> int:
    """Seconds in `value`: an integer (seconds) or a string like `"7d"`, `"36h"`, `"1d12h"`,
    `"90m"`, `"3600"`. ValueError saying what is accepted otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '7d' or '36h'")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            seconds = int(text)
        else:
            match = _DURATION.match(text)
            if not text or match is None:
                raise ValueError(
                    f"{value!r} is not a duration: use seconds or a string like '7d', '36h', "
                    "'90m' or '1d12h'"
                )
            seconds = sum(
                int(n) * _UNITS[u] for n, u in zip(match.groups(), "dhms", strict=True) if n
            )
    else:
        raise ValueError("a duration is a number of seconds or a string like '7d' or '36h'")
    if seconds < 0 or seconds > MAX_AGE:
        raise ValueError(f"a duration must be between 0 and {MAX_AGE} seconds (ten years)")
    return seconds


def format_duration(seconds: int) -> str:
    """`seconds` in the largest unit that divides it: `604800` -> `"7d"`."""
    for unit, size in _UNITS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return "0s"


def normalize_name(name: str) -> str:
    """The PEP 503 normalized form of a name (wildcards kept as they are)."""
    return _SEPARATORS.sub("-", name).lower()


@dataclass(frozen=True)
class Matcher:
    """One requirement string: a normalized name pattern and an optional specifier."""

    text: str
    pattern: str
    specifier: SpecifierSet | None

    def matches(self, name: str, version: str) -> bool:
        """True when project `name` (normalized) at `version` matches."""
        if not fnmatch.fnmatchcase(name, self.pattern):
            return False
        if self.specifier is None:
            return True
        try:
            parsed = Version(version)
        except InvalidVersion:
            return False  # a legacy version matches no specifier
        return self.specifier.contains(parsed, prereleases=True)


def parse_matcher(text: object) -> Matcher:
    """The `Matcher` of a requirement string; ValueError saying what is wrong otherwise."""
    if not isinstance(text, str):
        raise ValueError("a requirement is a string like 'evil-pkg', 'requests<2.20' or 'corp-*'")
    raw = text.strip()
    if not raw or len(raw) > MAX_ENTRY_LENGTH:
        raise ValueError(f"a requirement is 1-{MAX_ENTRY_LENGTH} characters, got {text!r}")
    found = _NAME_GLOB.match(raw)
    if found is None:
        raise ValueError(f"{text!r} does not start with a project name (wildcards * ? allowed)")
    name, rest = found.group(0), raw[found.end() :].strip()
    if rest.startswith("["):
        raise ValueError(f"{text!r}: extras are not supported in supply-chain rules")
    # The name may hold wildcards, which PEP 508 does not allow: check the rest of the
    # requirement with a placeholder name in its place.
    try:
        parsed = Requirement("placeholder" + (" " + rest if rest else ""))
    except InvalidRequirement as exc:
        raise ValueError(f"{text!r} is not a requirement: {exc}") from None
    if parsed.marker is not None or parsed.url is not None or parsed.extras:
        raise ValueError(f"{text!r}: markers, URLs and extras are not supported here")
    specifier = parsed.specifier if str(parsed.specifier) else None
    return Matcher(text=raw, pattern=normalize_name(name), specifier=specifier)


def _first_match(matchers: Iterable[Matcher], name: str, version: str) -> Matcher | None:
    for matcher in matchers:
        if matcher.matches(name, version):
            return matcher
    return None


@dataclass(frozen=True)
class Decision:
    """Whether one file is served, and the rule that decides (empty when no rule applies).

    `available_at` is set when the file is withheld by the age rule: the time it becomes
    available. `hidden` says whether a file that is not served is left off pages (always for
    refusals; for withheld files when the repository says `withheld_files = "hidden"`).
    """

    served: bool
    rule: str = ""
    available_at: datetime | None = None
    hidden: bool = True

    @property
    def withheld(self) -> bool:
        """True when the age rule holds the file back (it will become available)."""
        return not self.served and self.available_at is not None

    @property
    def kind(self) -> str:
        """The rule's kind (a bounded metric label): min_release_age, blocked, allowed,
        project_status, or none."""
        if not self.rule:
            return "none"
        head = self.rule.split(" ", 1)[0]
        return head.replace("-", "_").replace("release_age_exempt", "min_release_age")

    def reason(self) -> str:
        """The refusal in words (empty when served), e.g. `withheld by min_release_age 7d until
        2026-12-08T10:00:00Z`."""
        if self.served:
            return ""
        if self.available_at is not None:
            return f"withheld by {self.rule} until {iso(self.available_at)}"
        return f"refused by {self.rule}"


SERVED = Decision(True)


def iso(moment: datetime) -> str:
    """`moment` as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def quarantined(origin: str = "") -> Decision:
    """The refusal of every file of a quarantined project (PEP 792)."""
    return Decision(False, "project-status quarantined" + (f" ({origin})" if origin else ""))


# Compared and hashed by identity (`eq=False`): a policy is compiled once per repository view,
# and the decision memo must not hash its specifiers on every file.
@dataclass(frozen=True, eq=False)
class RepositoryPolicy:
    """The compiled rules of one repository (see the module docstring)."""

    repository: str
    min_age: int | None
    exempt: tuple[Matcher, ...]
    blocked: tuple[Matcher, ...]
    allowed: tuple[Matcher, ...]
    hide_withheld: bool
    fingerprint: str

    def decide(
        self, name: str, version: str, upload_time: datetime | None, now: datetime
    ) -> Decision:
        """Whether the file of project `name` (normalized) at `version`, uploaded (or first
        seen) at `upload_time`, is served at `now`. An unknown time counts as `now`: a file
        of unknown age is as young as can be."""
        static = _by_name_and_version(self, name, version)
        if static is not None:
            return static
        assert self.min_age is not None  # `_by_name_and_version` decides without one
        available = (upload_time or now) + timedelta(seconds=self.min_age)
        rule = f"min_release_age {format_duration(self.min_age)}{self.where}"
        if available > now:
            return Decision(False, rule, available_at=available, hidden=self.hide_withheld)
        return Decision(True, rule)

    @property
    def where(self) -> str:
        """` of storage/name`, appended to rules so that a group's decisions say whose."""
        return f" of {self.repository}" if self.repository else ""

    @property
    def ages(self) -> bool:
        """True when the rule depends on the time (pages change without any write)."""
        return bool(self.min_age)


@lru_cache(maxsize=65536)
def _by_name_and_version(policy: RepositoryPolicy, name: str, version: str) -> Decision | None:
    """What `policy` decides from the name and version alone (allowed, blocked, exempt, no age
    rule), or None when the file's age decides. Memoized (in at most 64k entries): a page
    asks once per file, and a file's name and version never change."""
    where = policy.where
    if policy.allowed and _first_match(policy.allowed, name, version) is None:
        return Decision(False, f"allowed{where} (not on the list)")
    hit = _first_match(policy.blocked, name, version)
    if hit is not None:
        return Decision(False, f"blocked {hit.text!r}{where}")
    if not policy.min_age:
        return SERVED
    exempt = _first_match(policy.exempt, name, version)
    if exempt is not None:
        return Decision(True, f"release_age_exempt {exempt.text!r}{where}")
    return None


Chain = Sequence[RepositoryPolicy]


def decide(
    chain: Chain, name: str, version: str, upload_time: datetime | None, now: datetime
) -> Decision:
    """The decision of a chain of policies (member first, then group): the first refusal, or
    the last rule that served it."""
    result = SERVED
    for policy in chain:
        decision = policy.decide(name, version, upload_time, now)
        if not decision.served:
            return decision
        if decision.rule:
            result = decision
    return result


def for_download(decision: Decision, filename: str) -> Decision:
    """The decision for downloading `filename` (a distribution, or its PEP 658 `.metadata`)
    given the file's `decision`. The metadata of a file withheld but listed as yanked is
    served: it is not code, and an installer pinned to that version (`pip install P==new`)
    needs it to finish resolving, print the yank reason naming the rule (PEP 592), and only
    then fail on the distribution's 403. Every other refusal covers the metadata too."""
    if decision.withheld and not decision.hidden and filename.endswith(".metadata"):
        return Decision(True, decision.rule)
    return decision


def chain_of(*policies: RepositoryPolicy | None) -> tuple[RepositoryPolicy, ...]:
    """The policies that exist among `policies`, in order."""
    return tuple(p for p in policies if p is not None)


def page_variant(chain: Chain, now: float) -> str:
    """What a rendered page depends on besides its data: the rules (so a change re-renders at
    once) and, with an age rule, the time in steps of `AGE_GRANULARITY` seconds. Empty for an
    empty chain, so pages of repositories without rules are keyed as they always were."""
    if not chain:
        return ""
    parts = [p.fingerprint for p in chain]
    if any(p.ages for p in chain):
        parts.append(str(int(now // AGE_GRANULARITY)))
    return "|policy:" + ":".join(parts)


def validate_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The supply-chain settings among `values`, checked and in their stored form (lists
    stripped and deduplicated, `None` and empty values dropped). ValueError naming the
    setting and what is wrong."""
    out: dict[str, Any] = {}
    age = values.get("min_release_age")
    if age is not None and age != "":
        try:
            seconds = parse_duration(age)
        except ValueError as exc:
            raise ValueError(f"min_release_age: {exc}") from None
        if seconds:
            out["min_release_age"] = age.strip() if isinstance(age, str) else age
    for key in ("release_age_exempt", "blocked", "allowed"):
        items = values.get(key)
        if items is None:
            continue
        if not isinstance(items, list | tuple):
            raise ValueError(f"{key}: a list of requirement strings")
        if len(items) > MAX_ENTRIES:
            raise ValueError(f"{key}: at most {MAX_ENTRIES} entries")
        cleaned: list[str] = []
        for item in items:
            try:
                text = parse_matcher(item).text
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
            if text not in cleaned:
                cleaned.append(text)
        if cleaned:
            out[key] = cleaned
    mode = values.get("withheld_files")
    if mode is not None:
        if mode not in WITHHELD_MODES:
            raise ValueError("withheld_files: 'yanked' (listed as yanked, the default) or 'hidden'")
        if mode != "yanked":
            out["withheld_files"] = mode
    return out


def compile_policy(settings: Mapping[str, Any], repository: str = "") -> RepositoryPolicy | None:
    """The compiled rules in a repository's stored `settings`, or None when it has none.
    `repository` (`storage/name`) is named in group decisions' rules. Equal rules of one
    repository compile to the same object (a repository view is reloaded every few seconds;
    the decision memo is keyed by the policy)."""
    own = {k: settings[k] for k in SETTING_KEYS if settings.get(k) not in (None, [], "")}
    if not own or set(own) == {"withheld_files"}:
        return None
    return _compile(json.dumps(own, sort_keys=True), repository)


@lru_cache(maxsize=1024)
def _compile(rules: str, repository: str) -> RepositoryPolicy:
    own = json.loads(rules)
    age = own.get("min_release_age")
    return RepositoryPolicy(
        repository=repository,
        min_age=parse_duration(age) if age is not None else None,
        exempt=tuple(parse_matcher(t) for t in own.get("release_age_exempt", ())),
        blocked=tuple(parse_matcher(t) for t in own.get("blocked", ())),
        allowed=tuple(parse_matcher(t) for t in own.get("allowed", ())),
        hide_withheld=own.get("withheld_files") == "hidden",
        fingerprint=hashlib.blake2s(rules.encode(), digest_size=6).hexdigest(),
    )


# -- pages --------------------------------------------------------------------------------------


# A page is screened in two passes (versions, then files) and re-screened as time passes:
# parsing each filename's version once is most of the cost.
_version_of = lru_cache(maxsize=16384)(listed_version)


def _yank_reason(f: SimpleFile, decision: Decision) -> str:
    reason = decision.reason()
    earlier = f.yanked
    if isinstance(earlier, str) and earlier:
        return f"{reason}; yanked: {earlier}"
    return reason


def screen_files(
    files: Iterable[SimpleFile], chain: Chain, name: str, now: datetime
) -> Iterator[SimpleFile]:
    """`files` as a page with these rules shows them (lazily): refused files left out,
    withheld ones yanked with a reason naming the rule (or left out, `withheld_files =
    "hidden"`)."""
    for f in files:
        decision = decide(chain, name, _version_of(f.filename), f.upload_time, now)
        if decision.served:
            yield f
        elif not decision.hidden:
            yield replace(f, yanked=_yank_reason(f, decision))


def hidden_versions(
    files: Iterable[SimpleFile], chain: Chain, name: str, now: datetime
) -> set[str]:
    """The versions among `files` none of whose files is served: they leave `versions`."""
    served: set[str] = set()
    seen: set[str] = set()
    for f in files:
        version = _version_of(f.filename)
        seen.add(version)
        if version not in served and decide(chain, name, version, f.upload_time, now).served:
            served.add(version)
    return seen - served


def screen_page(build: Callable[[], ProjectPage], chain: Chain, now: datetime) -> ProjectPage:
    """The page `build()` makes, as these rules show it. `build` is called twice (once to
    learn which versions have nothing served, once for the files), so a page streamed from
    storage is read twice rather than held in memory."""
    if not chain:
        return build()
    first = build()
    name = first.name
    gone = hidden_versions(first.listed_files, chain, name, now)
    page = build() if not isinstance(first.files, list | tuple) else first
    versions = [v for v in page.versions if _normal(v) not in gone]
    return ProjectPage(
        name=name,
        files=screen_files(page.listed_files, chain, name, now),
        versions=versions,
        status=page.status,
        status_reason=page.status_reason,
    )


def _normal(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version
