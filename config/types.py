"""Value types shared by every settings Struct (kept free of other accord imports)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Duration(float):
    """Seconds. In config written as ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"``, ``"7d"`` or a number."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError(f"expected a duration such as \"5s\", got {value!r}")
        if isinstance(value, int | float):
            if value < 0:
                raise ValueError(f"expected a duration >= 0, got {value!r}")
            return cls(value)
        if isinstance(value, str):
            match = _DURATION.match(value)
            if match:
                return cls(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        raise ValueError(f"expected a duration such as \"250ms\", \"5s\", \"2m\" or \"1h\", got {value!r}")


PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Share = Annotated[float, msgspec.Meta(gt=0, le=1)]


def dec_hook(tp: type, obj: Any) -> Any:
    """msgspec decode hook for the custom types above."""
    if tp is Duration:
        return Duration.parse(obj)
    raise NotImplementedError(f"no decoder for {tp!r}")


class RateLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One documented quota window of an external account: at most ``requests`` in any ``period``.

    ``kind`` names the requests it counts: ``"*"`` every request, or one kind a session tells apart
    (QuickBooks counts its ``/batch`` requests in a window of their own: ``kind = "batch"``).
    """

    requests: PositiveInt
    period: Duration = Duration(1.0)
    kind: str = "*"

    def counts(self, kind: str) -> bool:
        return self.kind == "*" or self.kind == kind


class AccountLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Every limit of one external account that its request budget enforces at once.

    ``windows``: the rate windows (sliding: at most ``requests`` in any ``period``); ``concurrency``: how
    many requests may be in flight (``None``: no cap); ``usage_ceiling``: the share of a server-reported
    quota (Salesforce's daily ``api-usage=n/N``) above which callers pause.
    """

    windows: tuple[RateLimit, ...] = ()
    concurrency: int | None = None
    usage_ceiling: float = 0.95
