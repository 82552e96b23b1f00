"""QuickBooks Online webhooks: signature check and payload parsing (legacy and CloudEvents).

Notifications carry ids only; the daemon treats them as hints that make the poller fetch at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

# lower-case entity name (as in CloudEvents types) → QBO entity name
ENTITY_NAMES = {name.lower(): name for name in (
    "Account", "Bill", "BillPayment", "Budget", "Class", "CreditMemo", "Currency", "Customer", "Department",
    "Deposit", "Employee", "Estimate", "Invoice", "Item", "JournalCode", "JournalEntry", "Payment",
    "PaymentMethod", "Preferences", "Purchase", "PurchaseOrder", "RefundReceipt", "SalesReceipt", "TaxAgency",
    "Term", "TimeActivity", "Transfer", "Vendor", "VendorCredit")}
# CloudEvents verb → legacy operation name
OPERATIONS = {"created": "Create", "updated": "Update", "deleted": "Delete", "merged": "Merge",
              "voided": "Void", "emailed": "Emailed"}

WebhookEvent = tuple[str, str, str]  # (QBO entity name, record id, operation)


def sign(body: bytes, verifier: str) -> str:
    """The ``intuit-signature`` value: base64 of HMAC-SHA256 over the raw body, keyed by the verifier."""
    return base64.b64encode(hmac.new(verifier.encode(), body, hashlib.sha256).digest()).decode()


def verify_webhook(body: bytes, signature: str, verifier: str) -> bool:
    """Whether ``signature`` (the ``intuit-signature`` header) matches ``body``; constant-time."""
    if not signature or not verifier:
        return False
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(verifier.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


def _legacy(payload: dict[str, Any], realm_id: str | None) -> list[WebhookEvent]:
    events: list[WebhookEvent] = []
    for note in payload.get("eventNotifications") or []:
        if realm_id is not None and str(note.get("realmId")) != realm_id:
            continue
        for entity in (note.get("dataChangeEvent") or {}).get("entities") or []:
            if entity.get("name") and entity.get("id") is not None:
                events.append((str(entity["name"]), str(entity["id"]), str(entity.get("operation") or "Update")))
    return events


def _cloud_events(payload: list[Any], realm_id: str | None) -> list[WebhookEvent]:
    events: list[WebhookEvent] = []
    for event in payload:
        if not isinstance(event, dict) or event.get("intuitentityid") is None:
            continue
        if realm_id is not None and str(event.get("intuitaccountid")) != realm_id:
            continue
        parts = str(event.get("type", "")).split(".")  # qbo.<entity>.<verb>.v1
        if len(parts) < 3 or parts[0] != "qbo":
            continue
        name = ENTITY_NAMES.get(parts[1].lower(), parts[1][:1].upper() + parts[1][1:])
        operation = OPERATIONS.get(parts[2].lower(), parts[2].capitalize())
        events.append((name, str(event["intuitentityid"]), operation))
    return events


def parse_webhook(body: bytes, realm_id: str | None = None) -> list[WebhookEvent]:
    """``(entity, id, operation)`` for every change in a notification, in either format.

    A JSON array is CloudEvents (``qbo.customer.updated.v1`` → ``("Customer", id, "Update")``); an object
    with ``eventNotifications`` is the legacy format. With ``realm_id`` only that company's events are
    kept. A body that is neither gives ``[]``.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    if isinstance(payload, list):
        return _cloud_events(payload, realm_id)
    if isinstance(payload, dict):
        return _legacy(payload, realm_id)
    return []
