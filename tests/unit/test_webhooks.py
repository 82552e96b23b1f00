"""``/webhooks/{system}`` accepts a notification only when it verifies: by the system's plug-in (QuickBooks'
``intuit-signature``; a Salesforce Outbound Message's URL secret and org id) or, for a system whose API signs
nothing (Harvest), by Accord's ``X-Accord-Signature``. With nothing configured to verify it, it is refused.
A verified one wakes the poller through the intake stream; nothing else reaches Redis."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import fakeredis
import httpx
import msgspec

from accord.config.load import loads
from accord.config.settings import Settings
from accord.connectors.quickbooks.webhooks import sign
from accord.streams.keys import Keys
from accord.web import build_app
from tests.helpers import CRM_AND_ERP, PSA

CONFIG = CRM_AND_ERP + PSA + """
[entities.account]
owner = "crm"
systems = ["crm", "erp"]
"""
ORG = "00D5g000004ABCDEAA"
OUTBOUND = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{ORG}</OrganizationId>
<ActionId>04k5g000000ABCDAA0</ActionId><Notification><Id>04l5g00000ABCDEAA1</Id>
<sObject xsi:type="sf:Opportunity" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<sf:Id xmlns:sf="urn:sobject.enterprise.soap.sforce.com">0065g00000XyZabAAB</sf:Id></sObject></Notification>
</notifications></soapenv:Body></soapenv:Envelope>""".encode()


def _with(settings: Settings, system: str, **changes: Any) -> Settings:
    changed = msgspec.structs.replace(settings.systems[system], **changes)
    return msgspec.structs.replace(settings, systems={**settings.systems, system: changed})


async def _post(settings: Settings, path: str, body: bytes, headers: dict[str, str] | None = None,
                ) -> tuple[httpx.Response, int]:
    redis = fakeredis.aioredis.FakeRedis()
    app = build_app(settings, redis, supervisor=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord") as client:
        response = await client.post(path, content=body, headers=headers or {})
    system = path.split("/")[2].split("?")[0]
    hints = await redis.xlen(Keys(settings.namespace).intake(system)) if system in settings.systems else 0
    await redis.aclose()
    return response, hints


async def test_quickbooks_notifications_need_the_verifier_and_its_signature() -> None:
    settings = loads(CONFIG)
    body = b'{"eventNotifications": []}'
    unconfigured, hints = await _post(settings, "/webhooks/erp", body, {"intuit-signature": sign(body, "x")})
    assert (unconfigured.status_code, hints) == (403, 0)
    assert "webhook_verifier under [systems.erp]" in unconfigured.json()["error"]
    settings = _with(settings, "erp", webhook_verifier="verifier-token")
    forged, hints = await _post(settings, "/webhooks/erp", body, {"intuit-signature": "forged"})
    assert (forged.status_code, hints) == (401, 0)
    signed, hints = await _post(settings, "/webhooks/erp?entity=account", body,
                                {"intuit-signature": sign(body, "verifier-token")})
    assert (signed.status_code, hints, signed.json()) == (200, 1, {"accepted": True})
    unknown, _ = await _post(settings, "/webhooks/nope", body)
    assert unknown.status_code == 404


async def test_a_salesforce_outbound_message_needs_the_url_secret_and_the_org_and_is_acknowledged() -> None:
    settings = loads(CONFIG)
    unconfigured, hints = await _post(settings, "/webhooks/crm?token=anything", OUTBOUND)
    assert (unconfigured.status_code, hints) == (403, 0)
    assert "webhook_secret under [systems.crm]" in unconfigured.json()["error"]
    settings = _with(settings, "crm", webhook_secret="s3cret-in-url", org_id=ORG[:15])
    wrong, hints = await _post(settings, "/webhooks/crm?token=guess", OUTBOUND)
    assert (wrong.status_code, hints) == (401, 0)
    other_org, hints = await _post(settings, "/webhooks/crm?token=s3cret-in-url", OUTBOUND.replace(b"00D5g", b"00D9z"))
    assert (other_org.status_code, hints) == (401, 0)
    good, hints = await _post(settings, "/webhooks/crm?token=s3cret-in-url", OUTBOUND)
    assert (good.status_code, hints) == (200, 1)
    assert good.headers["content-type"].startswith("text/xml") and b"<Ack>true</Ack>" in good.content


async def test_a_system_whose_api_signs_nothing_takes_accords_own_signed_hint() -> None:
    settings = loads(CONFIG)
    body = b'{"entity": "time_entry"}'
    unconfigured, hints = await _post(settings, "/webhooks/psa", body)
    assert (unconfigured.status_code, hints) == (403, 0)
    settings = _with(settings, "psa", webhook_secret="relay-secret")
    good_sig = "sha256=" + hmac.new(b"relay-secret", body, hashlib.sha256).hexdigest()
    forged, hints = await _post(settings, "/webhooks/psa", body + b" ", {"X-Accord-Signature": good_sig})
    assert (forged.status_code, hints) == (401, 0)
    good, hints = await _post(settings, "/webhooks/psa?entity=time_entry", body, {"X-Accord-Signature": good_sig})
    assert (good.status_code, hints) == (200, 1)
