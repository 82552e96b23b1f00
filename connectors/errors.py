"""Errors a connector raises, classified by what the caller does next.

::

    ConnectorError                  base; ``system`` names the external system
    ├── Retryable                   timeout, connection reset, 5xx: back off with jitter, retry
    │   └── RateLimited             429 / REQUEST_LIMIT_EXCEEDED: wait ``retry_after`` seconds, retry
    ├── AuthExpired                 401 / INVALID_SESSION_ID: refresh the token, retry once
    ├── StaleVersion                QBO 5010 / SF 412: re-read the record, retry with its new version
    └── Permanent                   validation, 4xx: never retried; the record goes to exceptions
        └── Gone                    the target record was deleted there: nothing to write, skip and count

Translate transport and HTTP failures into this tree at the connector boundary (``raise X(...) from exc``);
nothing above the connector looks at status codes.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every connector error. ``code`` is the API's own error code when it has one."""

    def __init__(self, system: str, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(f"{system}: {message}")
        self.system = system
        self.message = message
        self.code = code
        self.status = status


class Retryable(ConnectorError):
    """A transient failure: the same request may succeed later."""


class RateLimited(Retryable):
    """The external account's quota is exhausted; retry after ``retry_after`` seconds."""

    def __init__(self, system: str, message: str, *, retry_after: float, code: str | None = None,
                 status: int | None = None):
        super().__init__(system, message, code=code, status=status)
        self.retry_after = retry_after


class AuthExpired(ConnectorError):
    """The access token expired or was revoked: refresh it and retry once."""


class StaleVersion(ConnectorError):
    """The record changed since we read its version: re-read and retry."""


class Permanent(ConnectorError):
    """The request is wrong for this record (validation, not found, duplicate): do not retry."""


class Gone(Permanent):
    """The record no longer exists in the target (deleted there): an update has nothing to apply to."""
