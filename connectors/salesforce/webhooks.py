"""Salesforce Outbound Messages as poll hints (reference §1.9).

Salesforce signs nothing: a message proves itself by the secret in the endpoint URL configured in the
org (``/webhooks/<name>?token=<webhook_secret>``, sent over HTTPS) and, when ``org_id`` is set, by the
``OrganizationId`` in its SOAP body. Every accepted message must be answered with the SOAP ``Ack``, or
Salesforce retries it for up to 24 hours.
"""

from __future__ import annotations

import hmac
import re

from accord.connectors.salesforce.settings import SalesforceSettings
from accord.connectors.spec import WebhookRequest

ACK = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
       b'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse '
       b'xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body>'
       b'</soapenv:Envelope>')
_ORG = re.compile(rb"<(?:\w+:)?OrganizationId>\s*([A-Za-z0-9]{15,18})\s*</(?:\w+:)?OrganizationId>")


def verify_outbound_message(settings: SalesforceSettings, hook: WebhookRequest) -> bool | None:
    """True for a message with the configured secret (and org id, when set); None when no secret is set."""
    if not settings.webhook_secret:
        return None
    token = hook.query.get("token", "")
    if not hmac.compare_digest(token.encode(), settings.webhook_secret.encode()):
        return False
    if settings.org_id is None:
        return True
    found = _ORG.search(hook.body)
    return found is not None and found[1].decode()[:15] == settings.org_id[:15]
