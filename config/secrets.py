"""The secrets this process knows, so that no log line or trace shows them (``accord.actors.logs`` masks
them in every record). The configuration's secrets are added when logging is set up (``secret_values``);
a connector adds each token it obtains at run time (``redact``). Nothing here survives a restart."""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
MIN_SECRET = 4  # shorter values are not secrets worth masking (they would mask ordinary words)
SECRET_NAME = re.compile(r"(secret|password|passwd|api_key|verifier|(^|_)token)$", re.IGNORECASE)  # not token_url

_secrets: set[str] = set()
_lock = threading.Lock()


def redact(*values: object) -> None:
    """Mask these values in every log record of this process from now on (a token just obtained)."""
    fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET}
    if fresh - _secrets:
        with _lock:
            _secrets.update(fresh)


def masked(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def secret_values(settings: Any) -> list[str]:
    """The secrets a configuration holds: string fields named like a secret or a token anywhere in it,
    and the password of ``redis.url``."""
    found: list[str] = []
    _collect(settings, "", found)
    url = getattr(getattr(settings, "redis", None), "url", None)
    if url:
        password = urlsplit(url).password
        if password:
            found.append(password)
    return found


def _collect(value: Any, name: str, found: list[str]) -> None:
    fields = getattr(value, "__struct_fields__", None)
    if fields is not None:
        for field in fields:
            _collect(getattr(value, field), field, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(item, str(key), found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, name, found)
    elif isinstance(value, str) and SECRET_NAME.search(name):
        found.append(value)
