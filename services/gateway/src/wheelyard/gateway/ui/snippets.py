"""Copyable commands and configuration for pointing clients at a repository: installing with
pip, uv, poetry and pdm, and publishing with twine, uv, poetry and pdm (hosted repositories
only). Every snippet names this repository's own URLs."""

from __future__ import annotations

from dataclasses import dataclass

from wheelyard.gateway.ui import urls
from wheelyard.shared.domain.repositories import RepositoryView


@dataclass(frozen=True)
class Snippet:
    """One tool's snippet: a title, the text to copy, and a one-line explanation."""

    tool: str
    title: str
    text: str
    note: str = ""


def _source_name(view: RepositoryView) -> str:
    return "wheelyard" if view.name in ("all", "local") else f"wheelyard-{view.name}"


def install_snippets(base: str, view: RepositoryView, project: str | None = None) -> list[Snippet]:
    """How to install from `view` (a `project`, or `<package>` when None)."""
    index = urls.simple(base, view.storage, view.name)
    what = project or "<package>"
    name = _source_name(view)
    auth = (
        "This repository is private: clients authenticate as user __token__ with an API token "
        "as the password (or with your username and password)."
        if view.visibility == "private"
        else ""
    )
    return [
        Snippet("pip", "pip", f"pip install --index-url {index} {what}", auth),
        Snippet("uv", "uv", f"uv pip install --index-url {index} {what}", auth),
        Snippet(
            "uv-project",
            "uv (pyproject.toml)",
            f'[[tool.uv.index]]\nname = "{name}"\nurl = "{index}"\ndefault = true',
            f"then: uv add {what}",
        ),
        Snippet(
            "poetry",
            "Poetry",
            f"poetry source add --priority=primary {name} {index}\npoetry add {what}",
        ),
        Snippet(
            "pdm",
            "PDM (pyproject.toml)",
            f'[[tool.pdm.source]]\nname = "{name}"\nurl = "{index}"\nverify_ssl = true',
            f"then: pdm add {what}",
        ),
    ]


def publish_snippets(base: str, view: RepositoryView) -> list[Snippet]:
    """How to upload to `view` (hosted repositories; others take no uploads)."""
    if view.type != "hosted":
        return []
    upload = urls.upload(base, view.storage, view.name)
    name = _source_name(view)
    note = "Use __token__ as the username and an API token as the password."
    return [
        Snippet("twine", "twine", f"twine upload --repository-url {upload} dist/*", note),
        Snippet("uv-publish", "uv", f"uv publish --publish-url {upload} dist/*", note),
        Snippet(
            "poetry-publish",
            "Poetry",
            f"poetry config repositories.{name} {upload}\npoetry publish --repository {name}",
            note,
        ),
        Snippet("pdm-publish", "PDM", f"pdm publish --repository {upload}", note),
    ]
