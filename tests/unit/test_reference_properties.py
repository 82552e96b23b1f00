"""Property-based: contacts reference accounts; under random interleavings (contacts created before
their account syncs, polls in any order, failures, writer crashes) every contact reaches the other
system once, pointing at the other system's copy of its account, with no dangling reference."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.actors.poll.poller import Poller
from accord.actors.write.writer import Writer
from accord.config.load import loads
from accord.connectors.errors import Retryable
from accord.streams.keys import Keys
from accord.streams.log import ensure_groups
from tests.fakes import MemorySystem
from tests.helpers import CRM_AND_ERP

CONFIG = """
namespace = "r"
[streams]
partitions = 2
max_deliveries = 50
retry_backoff_cap = "1ms"
""" + CRM_AND_ERP + """
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
[entities.contact]
owner = "crm"
systems = ["crm", "erp"]
"""
ENTITIES = ("account", "contact")


@dataclass
class Step:
    kind: str
    index: int = 0
    entity: str = "account"


steps = st.one_of(
    st.builds(Step, kind=st.just("account")),
    st.builds(Step, kind=st.just("contact"), index=st.integers(0, 5)),
    st.builds(Step, kind=st.just("poll"), entity=st.sampled_from(ENTITIES), index=st.integers(0, 1)),
    st.builds(Step, kind=st.just("sweep"), entity=st.sampled_from(ENTITIES)),
    st.builds(Step, kind=st.just("fail")),
    st.builds(Step, kind=st.just("crash"), entity=st.sampled_from(ENTITIES)),
)


class Rig:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.settings = loads(CONFIG, env={})
        self.systems = {s: MemorySystem(s, batch_size=2, entities=ENTITIES) for s in ("crm", "erp")}
        self.pollers = {s: Poller(self.settings, s, "", connector=c, redis=redis)  # type: ignore[arg-type]
                        for s, c in self.systems.items()}
        self.writers = {e: self.writer(e) for e in ENTITIES}
        self.accounts: list[str] = []

    def writer(self, entity: str) -> Writer:
        w = Writer(self.settings, entity, "", connectors=dict(self.systems), redis=self.redis)  # type: ignore[arg-type]
        w.assign(range(2))
        return w

    async def apply(self, step: Step) -> None:
        crm = self.systems["crm"]
        if step.kind == "account":
            self.accounts.append(crm.user_create({"name": f"A{len(self.accounts)}"}))
        elif step.kind == "contact" and self.accounts:
            account = self.accounts[step.index % len(self.accounts)]
            crm.user_create({"last_name": "C", "account": account}, entity="contact")
        elif step.kind == "poll":
            await self.pollers[("crm", "erp")[step.index]].poll_page(step.entity)
        elif step.kind == "sweep":
            await self.writers[step.entity].sweep()
        elif step.kind == "fail":
            self.systems["erp"].fail_batches.append(Retryable("erp", "503"))
        elif step.kind == "crash":
            self.writers[step.entity] = self.writer(step.entity)

    async def settle(self) -> None:
        self.systems["erp"].fail_batches.clear()
        for _ in range(10):
            for entity in ENTITIES:
                await self.pollers["crm"].poll_page(entity)
                await self.pollers["erp"].poll_page(entity)
                for _ in range(3):
                    await self.writers[entity].sweep()
                    await asyncio.sleep(0.002)  # lets a failed slot's 1 ms backoff elapse

    async def check(self) -> None:
        crm, erp = self.systems["crm"], self.systems["erp"].tables
        erp_account_of = {gid: rid for rid, gid in erp["account"].gids.items() if gid is not None}
        assert len(erp["account"].records) == len(self.accounts) == len(erp_account_of)
        assert len(erp["contact"].records) == len(crm.tables["contact"].records)
        for crm_id, contact in crm.tables["contact"].records.items():
            gid = (await self.redis.get(Keys("r").xid("contact", "crm", crm_id))).decode()
            [erp_contact] = [erp["contact"].records[r] for r, g in erp["contact"].gids.items() if g == gid]
            account_gid = (await self.redis.get(Keys("r").xid("account", "crm", contact["account"]))).decode()
            assert erp_contact["account"] == erp_account_of[account_gid]  # the ERP's own id, not the CRM's


async def scenario(plan: list[Step]) -> None:
    redis = fakeredis.aioredis.FakeRedis()
    try:
        rig = Rig(redis)
        for entity in ENTITIES:
            await ensure_groups(redis, Keys("r"), entity, ("crm", "erp"), 2)
            await rig.pollers["erp"].poll_page(entity)
        for step in plan:
            await rig.apply(step)
        await rig.settle()
        await rig.check()
    finally:
        await redis.aclose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=1, max_size=30))
def test_references_resolve_under_any_interleaving(plan: list[Step]) -> None:
    asyncio.run(scenario(plan))
