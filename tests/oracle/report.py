"""The auditor's verdict on the sandboxed firm."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from accord.streams.keys import Keys
from accord.streams.replies import text_or_none


@dataclass
class Mismatch:
    gid: str
    field: str
    crm: Any
    erp: Any


@dataclass
class Report:
    """The auditor's verdict: the two systems agree when every list is empty."""

    checked: int = 0
    deleted_checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    missing_in_erp: list[str] = field(default_factory=list)  # CRM account ids with no ERP customer
    extra_in_erp: list[str] = field(default_factory=list)  # ERP customer ids with no CRM account
    not_deactivated: list[str] = field(default_factory=list)  # deleted in CRM, still active in ERP
    psa_checked: dict[str, int] = field(default_factory=dict)  # entity -> records compared with the PSA
    psa_problems: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return not (self.mismatches or self.missing_in_erp or self.extra_in_erp or self.not_deactivated
                    or self.psa_problems)

    def summary(self) -> str:
        verdict = "AGREE" if self.agree else "DISAGREE"
        text = (f"{verdict}: {self.checked} live accounts compared field by field, {self.deleted_checked} deleted "
                f"ones checked; {len(self.mismatches)} field mismatches, {len(self.missing_in_erp)} missing in "
                f"the ERP, {len(self.extra_in_erp)} extra in the ERP, {len(self.not_deactivated)} not deactivated")
        if self.psa_checked:
            checked = ", ".join(f"{n} {e}" for e, n in self.psa_checked.items())
            text += f"; PSA: {checked} checked, {len(self.psa_problems)} problems"
        return text


async def linked_gid(redis: Redis, keys: Keys, entity: str, system: str, system_id: Any) -> str | None:
    return text_or_none(await redis.get(keys.xid(entity, system, str(system_id)))) or None
