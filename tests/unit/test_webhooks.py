"""``/webhooks/{system}`` asks the system's plug-in to verify a notification (QuickBooks signs with
``intuit-signature``); a verified one wakes the poller through the intake stream."""

from __future__ import annotations

import fakeredis
import httpx
import msgspec

from accord.config.load import loads
from accord.connectors.quickbooks.webhooks import sign
from accord.streams.keys import Keys
from accord.web import build_app
from tests.helpers import CRM_AND_ERP

CONFIG = CRM_AND_ERP + """
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
"""


async def test_a_webhook_is_verified_by_the_system_plugin() -> None:
    settings = loads(CONFIG)
    erp = msgspec.structs.replace(settings.systems["erp"], webhook_verifier="verifier-token")
    settings = msgspec.structs.replace(settings, systems={**settings.systems, "erp": erp})
    redis = fakeredis.aioredis.FakeRedis()
    app = build_app(settings, redis, supervisor=None)
    body = b'{"eventNotifications": []}'
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord") as client:
        forged = await client.post("/webhooks/erp", content=body, headers={"intuit-signature": "forged"})
        signed = await client.post("/webhooks/erp?entity=account", content=body,
                                   headers={"intuit-signature": sign(body, "verifier-token")})
        unsigned_crm = await client.post("/webhooks/crm", content=body)  # Salesforce has no verifier: a hint
        unknown = await client.post("/webhooks/nope", content=body)
    assert (forged.status_code, signed.status_code, unsigned_crm.status_code, unknown.status_code) == (401, 200, 200, 404)
    keys = Keys(settings.namespace)
    assert await redis.xlen(keys.intake("erp")) == 1 and await redis.xlen(keys.intake("crm")) == 1
    await redis.aclose()
