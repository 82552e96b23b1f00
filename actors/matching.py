"""Match rules: find a target's existing record for a record about to be created there (DESIGN §3).

Each system's poller keeps an index of its records by every rule's normalised key
(``match:{entity}:{system}:{rule}:{key}`` → set of ids). Before a create, the writer looks the record up
rule by rule: one candidate is linked (no duplicate is made), several are an exception for review.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

_LEGAL_FORMS = {"inc", "llc", "ltd", "limited", "corp", "corporation", "co", "plc", "llp", "gmbh", "ag", "se",
                "sa", "sas", "sarl", "bv", "nv", "pty", "srl", "spa", "group"}
_NAME_FIELDS = {"name", "legal_name"}


def normalise(field: str, value: Any) -> str:
    """Case, accents, punctuation and spacing folded; legal-form words dropped from names."""
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode().casefold()
    words = re.findall(r"[a-z0-9]+", text)
    if field in _NAME_FIELDS:
        words = [w for w in words if w not in _LEGAL_FORMS] or words
    return " ".join(words)


def match_keys(rules: Sequence[Sequence[str]], fields: Mapping[str, Any]) -> dict[int, str]:
    """Rule index -> hashed key, for every rule whose fields all have a value."""
    keys: dict[int, str] = {}
    for i, rule in enumerate(rules):
        values = [fields.get(f) for f in rule]
        if all(v not in (None, "") for v in values):
            joined = "\x1f".join(normalise(f, v) for f, v in zip(rule, values, strict=True))
            keys[i] = hashlib.blake2b(joined.encode(), digest_size=12).hexdigest()
    return keys
