"""A record read by its poller before whoever created it linked it (regression: a provisioned PSA task).

The provisioner creates a project's tasks in the PSA and links each to a global id derived from the deal,
right after the PSA answers. A PSA poll between the two reads the task with no xid yet and mints a gid of
its own; the link then made that gid an alias. The ERP create published under the minted gid was linked to
it, not to the task's gid: the task showed "not in the ERP" for good (its ERP item belonged to the alias),
and its time would have waited for it. Either order of the ERP write and the link now ends with one ERP
record linked to the task's own gid. On fakeredis, the embedded Redis 6.2 and Redis 7.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from accord.streams.batch import Batch
from accord.streams.state import Identity
from tests.helpers import wait_for
from tests.unit.test_liveness import Rig, config

GID = "prov-opportunity-7.0"  # the provisioner's gid of a project's first task


async def _link(rig: Rig, crm_id: str) -> None:
    """What the provisioner does once the system answered its create."""
    batch = Batch()
    Identity(rig.redis, rig.keys).link(batch, "account", GID, "crm", crm_id)
    await batch.apply(rig.redis)


async def _settled(rig: Rig) -> bool:
    await rig.writers["account"].sweep()
    return await rig.pending("account") == 0


async def _linked(rig: Rig, crm_id: str) -> None:
    identity = Identity(rig.redis, rig.keys)
    [erp_id] = list(rig.erp.tables["account"].records)  # one record in the ERP, never two
    assert await identity.xref("account", GID) == {"crm": crm_id, "erp": erp_id}
    assert await identity.gids_for("account", "erp", [erp_id]) == {erp_id: GID}
    rig.crm.user_update(crm_id, {"name": "Acme Renamed"})  # a later change updates that record
    await rig.publish("account")
    await rig.sweep_until("account", lambda: rig.erp.tables["account"].records[erp_id]["name"] == "Acme Renamed",
                          within=5)
    assert rig.erp.creates == 1 and await rig.exceptions() == []


async def test_linked_after_the_write_under_the_minted_gid_moves_the_link(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config()).setup()
    crm_id = rig.crm.user_create({"name": "Acme"})
    await rig.publish("account")  # read before the creator linked it: a gid is minted
    await rig.sweep_until("account", lambda: rig.erp.creates == 1, within=5)  # written under the minted gid
    await _link(rig, crm_id)
    await _linked(rig, crm_id)


async def test_linked_before_the_write_the_change_joins_its_record(any_redis: Redis) -> None:
    rig = await Rig(any_redis, config()).setup()
    crm_id = rig.crm.user_create({"name": "Acme"})
    await rig.publish("account")
    await _link(rig, crm_id)  # the usual order: the creator links long before the writer's turn
    await rig.sweep_until("account", lambda: rig.erp.creates == 1, within=5)
    await _linked(rig, crm_id)


async def test_a_create_sent_under_the_minted_gid_before_a_crash_is_found_not_repeated(any_redis: Redis) -> None:
    """The double fault: the ERP create went out under the minted gid, the writer died before its commit,
    and the creator linked the record meanwhile. The restarted writer works under the record's gid; it
    looks the create up under the alias too, and links what it finds instead of creating it again."""
    rig = await Rig(any_redis, config()).setup()
    crm_id = rig.crm.user_create({"name": "Acme"})
    await rig.publish("account")

    async def killed(*_: Any) -> None:
        raise RuntimeError("killed before its commit")

    rig.writers["account"].lane("erp")._commit = killed  # type: ignore[method-assign]
    with pytest.raises(ExceptionGroup):
        await rig.writers["account"].sweep()
    assert rig.erp.creates == 1, "sent under the minted gid, not recorded"
    await _link(rig, crm_id)
    rig.writers["account"] = rig.writer("account")  # restarted: the entry is pending, its create was sent
    await rig.sweep_until("account", lambda: rig.erp.find_calls == 1, within=5)
    await wait_for(lambda: _settled(rig), timeout=5, message="the pending entry settled")
    await _linked(rig, crm_id)
    assert await any_redis.hlen(rig.keys.creating("erp", "account")) == 0, "the alias's create is settled too"
