"""Property-based: contacts reference accounts; under random interleavings (contacts created before
their account syncs, polls in any order, failures, writer crashes) every contact reaches the other
system once, pointing at the other system's copy of its account, with no dangling reference."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.actors.poller import Poller
from accord.actors.writer import Writer
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


async def scenario(plan: list[Step]) -> None:
    redis = fakeredis.aioredis.FakeRedis()
    settings = loads(CONFIG, env={})
    systems = {s: MemorySystem(s, batch_size=2, entities=ENTITIES) for s in ("crm", "erp")}
    pollers = {s: Poller(settings, s, "", connector=c, redis=redis) for s, c in systems.items()}  # type: ignore[arg-type]

    def writer(entity: str) -> Writer:
        w = Writer(settings, entity, "", connectors=dict(systems), redis=redis)  # type: ignore[arg-type]
        w.assign(range(2))
        return w

    writers = {e: writer(e) for e in ENTITIES}
    crm = systems["crm"]
    accounts: list[str] = []
    try:
        for entity in ENTITIES:
            await ensure_groups(redis, Keys("r"), entity, ("crm", "erp"), 2)
            await pollers["erp"].poll_page(entity)
        for step in plan:
            if step.kind == "account":
                accounts.append(crm.user_create({"name": f"A{len(accounts)}"}))
            elif step.kind == "contact" and accounts:
                crm.user_create({"last_name": "C", "account": accounts[step.index % len(accounts)]}, entity="contact")
            elif step.kind == "poll":
                await pollers[("crm", "erp")[step.index]].poll_page(step.entity)
            elif step.kind == "sweep":
                await writers[step.entity].sweep()
            elif step.kind == "fail":
                systems["erp"].fail_batches.append(Retryable("erp", "503"))
            elif step.kind == "crash":
                writers[step.entity] = writer(step.entity)
        systems["erp"].fail_batches.clear()
        for _ in range(10):
            for entity in ENTITIES:
                await pollers["crm"].poll_page(entity)
                await pollers["erp"].poll_page(entity)
                for _ in range(3):
                    await writers[entity].sweep()
                    await asyncio.sleep(0.002)
        erp = systems["erp"].tables
        erp_account_of: dict[str, str] = {}
        for rid, gid in erp["account"].gids.items():
            assert gid is not None
            erp_account_of[gid] = rid
        assert len(erp["account"].records) == len(accounts)
        assert len(erp["contact"].records) == len(crm.tables["contact"].records)
        for crm_id, contact in crm.tables["contact"].records.items():
            gid = (await redis.get(Keys("r").xid("contact", "crm", crm_id))).decode()
            [erp_contact] = [erp["contact"].records[r] for r, g in erp["contact"].gids.items() if g == gid]
            account_gid = (await redis.get(Keys("r").xid("account", "crm", contact["account"]))).decode()
            assert erp_contact["account"] == erp_account_of[account_gid]  # the ERP's own id, not the CRM's
    finally:
        await redis.aclose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=1, max_size=30))
def test_references_resolve_under_any_interleaving(plan: list[Step]) -> None:
    asyncio.run(scenario(plan))
