"""Reading ahead: what an installer resolving a project is sure to ask for next, named while
a cold project page is parsed, so that the proxy fetches it before the installer's request.

An installer resolving a project reads its page, picks the newest final release that its
requirement allows (pip and uv skip pre-releases unless asked, and yanked files: PEP 440,
PEP 592) and then reads that release's core metadata, from the `.metadata` file of the wheel
it would install (PEP 658, PEP 714) when the index lists one. Which wheel it takes depends on
its interpreter and platform, except in the commonest case for pure-Python projects: the
release has exactly one wheel and it installs everywhere (`py3-none-any`). Then the
installer's next request for the project is that `.metadata` (`MetadataPick`), and after it
the pages of every project the metadata requires without a condition (`sure_dependencies`: a
marker, an extra or a platform, may not apply to the installer), whatever it runs on, unless
its requirement pins an older release or its Python is too old for the newest one: a few
kilobytes fetched for nothing, kept like every cached file until retention removes them.

The proxy fetches them as it would for the installer (but never asks the upstream for a name
a hosted repository holds: a group shadowing it would not, and a public project naming an
internal one is how dependency confusion starts), and each page fetched that way reads
ahead in turn, so the proxy walks the dependencies while the installer is still reading the
first answers. An installer that asks for everything as soon as it can (uv) keeps pace with
that walk and gains nothing; one that resolves a project at a time (pip) finds most of its
requests answered from the cache (docs/performance.md, "Reading ahead").
Distributions are not read ahead: a resolution (`uv pip compile`, `uv lock`, `pip install
--dry-run`) never downloads them, so no installer is sure to ask.
"""

from __future__ import annotations

from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from wheelyard.shared.errors import InvalidInput
from wheelyard.shared.packaging.metadata import parse_core_metadata
from wheelyard.shared.packaging.simple.model import SimpleFile


class MetadataPick:
    """Sees the files of one page as it is parsed (`see`, in page order) and then names the
    wheel whose `.metadata` an installer is sure to ask for next (`choice`), or None.

    Promises: only a file listed with a core-metadata sha256 (one the proxy can verify and
    cache), the only wheel of the newest final release that has a file not yanked (its
    sdists aside: installers prefer a wheel), tagged for every Python 3 interpreter and
    platform (`py3-none-any`)."""

    __slots__ = ("_last", "_newest", "_wheels")

    def __init__(self) -> None:
        self._newest: Version | None = None
        self._wheels: list[SimpleFile] = []
        # The last version read: a page lists a release's files together, so most files
        # reuse it instead of parsing their version again.
        self._last: tuple[str, Version | None] = ("", None)

    def see(self, listed: SimpleFile, listed_version: str) -> None:
        """Take note of one listed file and its normalized version (the page parser's
        `listed_version`: `0` when the filename has none)."""
        if listed.yanked:
            return
        if self._last[0] != listed_version:
            self._last = (listed_version, _parsed(listed_version))
        version = self._last[1]
        if version is None or version.is_prerelease:
            return
        wheel = [listed] if listed.filename.endswith(".whl") else []
        if self._newest is None or version > self._newest:
            self._newest, self._wheels = version, wheel
        elif version == self._newest:
            self._wheels += wheel

    def choice(self) -> SimpleFile | None:
        """The wheel whose `.metadata` to read ahead, or None when no installer is sure to
        ask for one (several wheels, a platform wheel, no verifiable metadata)."""
        if len(self._wheels) != 1:
            return None
        wheel = self._wheels[0]
        if wheel.core_metadata_sha256 is None:
            return None
        try:
            tags = parse_wheel_filename(wheel.filename)[3]
        except InvalidWheelFilename:
            return None
        if any(_everywhere(tag) for tag in tags):
            return wheel
        return None


def _everywhere(tag: Tag) -> bool:
    # `py3` (or `py3X`, which installers accept from Python 3.X on) with no ABI and no
    # platform: every Python 3 installer's compatible tags include it; a wheel installs
    # where any one of its tags does (PEP 425, compressed tag sets).
    return tag.interpreter.startswith("py3") and tag.abi == "none" and tag.platform == "any"


def _parsed(text: str) -> Version | None:
    try:
        return Version(text) if text != "0" else None
    except InvalidVersion:
        return None


#: Requirements of one `.metadata` whose pages are read ahead at most.
MAX_DEPENDENCIES = 64


def sure_dependencies(metadata: bytes) -> list[str]:
    """The normalized names of the projects `metadata` (core metadata) requires without
    condition: every installer that installs it asks for their pages next. A requirement
    with a marker (an extra, a platform, a Python version) may not apply, so it is left out;
    so is all of it when the metadata does not parse. At most `MAX_DEPENDENCIES`."""
    try:
        requires = parse_core_metadata(metadata).requires_dist
    except InvalidInput:
        return []
    names: list[str] = []
    for line in requires:
        requirement = Requirement(line)  # parse_core_metadata validated every one
        name = canonicalize_name(requirement.name)
        if requirement.marker is None and requirement.url is None and name not in names:
            names.append(name)
    return names[:MAX_DEPENDENCIES]
