"""Reference translation, top-level and inside line items, on fakeredis."""

from __future__ import annotations

from redis.asyncio import Redis

from accord.actors.references import References
from accord.config.load import loads
from accord.streams.batch import Batch
from accord.streams.keys import Keys
from accord.streams.state import Identity
from tests.helpers import CRM_AND_ERP, PSA

CONFIG = 'namespace = "r"\n' + CRM_AND_ERP + PSA + """
[entities.account]
owner = "crm"
systems = ["crm", "psa", "erp"]
[entities.project]
owner = "psa"
systems = ["psa", "erp"]
[entities.time_entry]
owner = "psa"
systems = ["psa", "erp"]
[entities.invoice]
owner = "erp"
systems = ["erp", "psa", "crm"]
"""


def _references(redis: Redis) -> tuple[References, Identity]:
    identity = Identity(redis, Keys("r"))
    return References(loads(CONFIG, env={}), identity), identity


async def test_line_item_references_become_global_ids_and_back(fake_redis: Redis) -> None:
    references, identity = _references(fake_redis)
    invoice = {"account": "58", "number": "1001",
               "lines": [{"time_entry": "301", "amount": "150"}, {"description": "fee", "amount": "20"}]}
    original_lines = invoice["lines"]
    await references.to_global("erp", "invoice", [invoice])

    gids, _ = await identity.resolve("time_entry", "erp", ["301"], {})
    accounts, _ = await identity.resolve("account", "erp", ["58"], {})
    assert invoice["lines"][0]["time_entry"] == gids["301"]
    assert invoice["account"] == accounts["58"]
    assert original_lines[0]["time_entry"] == "301", "the caller's nested dicts are not edited in place"

    batch = Batch()
    identity.link(batch, "time_entry", gids["301"], "psa", "9001")
    identity.link(batch, "account", accounts["58"], "psa", "77")
    await batch.apply(fake_redis)
    outbound = {**invoice}
    gaps = await references.to_native("psa", "invoice", [outbound])
    assert gaps == [{}]
    assert outbound["lines"][0]["time_entry"] == "9001" and outbound["account"] == "77"


async def test_a_line_reference_missing_in_the_target_is_reported_by_path(fake_redis: Redis) -> None:
    references, _ = _references(fake_redis)
    invoice = {"lines": [{"time_entry": "te-gid-without-psa-id"}]}
    gaps = await references.to_native("psa", "invoice", [invoice])
    assert gaps == [{"lines.time_entry": ("time_entry", "te-gid-without-psa-id")}]  # what the record waits for
