"""Domain errors raised by shared code and services.

They carry no HTTP knowledge: `wheelyard.shared.web.problems` is the one place that maps them to
responses. Every error has a message a person can act on.
"""

from __future__ import annotations


class WheelyardError(Exception):
    """Base class of every domain error; `message` is safe to show to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(WheelyardError):
    """The thing asked for does not exist (or the caller may not know that it does)."""


class Conflict(WheelyardError):
    """The request contradicts what is already stored (e.g. a filename with other bytes)."""


class InvalidInput(WheelyardError):
    """The request is malformed or violates a packaging rule."""


class TooLarge(InvalidInput):
    """The request body or a member of an archive exceeds a configured limit."""


class Unauthenticated(WheelyardError):
    """No credentials, or credentials that do not verify."""


class Forbidden(WheelyardError):
    """The caller is known but not allowed to do this."""


class Refused(Forbidden):
    """A file a repository's rules do not serve (403); `extensions` are extra members of the
    problem detail (RFC 9457 §3.2): the rule, and when the file becomes available."""

    def __init__(self, message: str, extensions: dict[str, str]) -> None:
        super().__init__(message)
        self.extensions = extensions


class Gone(WheelyardError):
    """The action or resource existed once and is no longer offered."""


class RateLimited(WheelyardError):
    """Too many attempts; `retry_after` says in how many seconds to try again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendUnavailable(WheelyardError):
    """A store (database, blobs, cache) or an upstream cannot be reached right now."""

    def __init__(self, message: str, part: str = "backend") -> None:
        super().__init__(message)
        self.part = part


class UpstreamError(WheelyardError):
    """An upstream index answered badly (5xx, wrong bytes, truncated body, timeout)."""


class UpstreamTimeout(UpstreamError):
    """An upstream did not answer within its timeout (504 Gateway Timeout)."""


class IntegrityFailure(WheelyardError):
    """Bytes did not match the digest they were promised to have."""


class ConfigurationError(WheelyardError):
    """A configuration value is invalid; the message names the key."""
