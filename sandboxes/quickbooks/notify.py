"""The sandbox's webhook emitter: after changes, POST a signed legacy notification, as QBO does.

Each ``flush()`` drains the change events the sandbox recorded (API writes and user edits) and sends them
as one ``eventNotifications`` body signed with ``intuit-signature`` (base64 HMAC-SHA256 keyed by the
verifier token). A failed delivery puts the events back for the next flush. ``start()`` runs flushes
on a background thread for the demo; tests call ``flush()`` directly.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import defaultdict
from typing import Any

import httpx

from accord.connectors.quickbooks.webhooks import sign
from accord.sandboxes.quickbooks.sandbox import ChangeEvent, QuickBooksState


def notification(events: list[ChangeEvent]) -> dict[str, Any]:
    """The legacy payload for ``events``, one ``eventNotifications`` entry per company."""
    by_realm: dict[str, list[dict[str, str]]] = defaultdict(list)
    for event in events:
        stamp = dt.datetime.fromtimestamp(event.at, tz=dt.UTC).isoformat(timespec="milliseconds")
        by_realm[event.realm_id].append({"name": event.entity, "id": event.id, "operation": event.operation,
                                         "lastUpdated": stamp.replace("+00:00", "Z")})
    return {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": entities}}
                                   for realm, entities in by_realm.items()]}


class WebhookEmitter:
    """Delivers the sandbox's change events to one webhook URL."""

    def __init__(self, state: QuickBooksState, url: str, verifier: str, *,
                 transport: httpx.BaseTransport | None = None, timeout: float = 3.0) -> None:
        self._state = state
        self._url = url
        self._verifier = verifier
        self._client = httpx.Client(transport=transport, timeout=httpx.Timeout(timeout))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def flush(self) -> int:
        """Send every pending event in one signed notification; returns how many were delivered."""
        events = self._state.drain_events()
        if not events:
            return 0
        body = json.dumps(notification(events)).encode()
        try:
            response = self._client.post(self._url, content=body, headers={
                "Content-Type": "application/json", "intuit-signature": sign(body, self._verifier)})
            delivered = response.status_code < 300
        except httpx.HTTPError:
            delivered = False
        if not delivered:
            self._state.requeue_events(events)
            return 0
        return len(events)

    def start(self, interval: float = 1.0) -> WebhookEmitter:
        def loop() -> None:
            while not self._stop.wait(interval):
                self.flush()

        self._thread = threading.Thread(target=loop, name="qbo-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._client.close()
