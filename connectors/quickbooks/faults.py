"""QuickBooks Online error bodies, as the sandbox renders them and the connector reads them.

Two shapes exist: the API's validation/system envelope ``{"Fault":{"Error":[...],"type":...},"time":...}``
and the gateway's lower-case ``{"fault":{"error":[...],"type":...}}`` used for 401/429 (per the reference,
whose exact gateway body is unverified; the connector branches on the HTTP status, not the case).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

PACIFIC = dt.timezone(dt.timedelta(hours=-7))  # the offset QBO timestamps are rendered in


def qbo_time(epoch: float, *, millis: bool = False) -> str:
    """``2026-04-01T09:10:00-07:00`` (records, second resolution) or with ms (a response's ``time``)."""
    stamp = dt.datetime.fromtimestamp(epoch, tz=PACIFIC)
    return stamp.isoformat(timespec="milliseconds" if millis else "seconds")


class QboFault(Exception):
    """An error the sandbox answers with a ``Fault`` envelope (also used inside batch items)."""

    def __init__(self, status: int, code: str, message: str, detail: str, *, element: str = "",
                 kind: str = "ValidationFault"):
        super().__init__(f"{code} {message}: {detail}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.kind = kind

    def fault(self) -> dict[str, Any]:
        return {"Error": [{"Message": self.message, "Detail": self.detail, "code": self.code,
                           "element": self.element}], "type": self.kind}

    def body(self, now: float) -> dict[str, Any]:
        return {"Fault": self.fault(), "time": qbo_time(now, millis=True)}


def gateway_fault(message: str, detail: str, code: str, kind: str) -> dict[str, Any]:
    """The lower-case body of a gateway refusal (401 AuthenticationFailed, 429 ThrottleExceeded)."""
    return {"warnings": None, "intuitObject": None,
            "fault": {"error": [{"message": message, "detail": detail, "code": code, "element": None}],
                      "type": kind},
            "report": None, "queryResponse": None, "batchItemResponse": [], "requestId": None,
            "time": None, "status": None, "cdcresponse": []}


def auth_failed(detail: str) -> dict[str, Any]:
    return gateway_fault("message=AuthenticationFailed; errorCode=003200; statusCode=401", detail, "3200",
                         "AUTHENTICATION")


def throttled() -> dict[str, Any]:
    return gateway_fault("message=ThrottleExceeded; errorCode=003001; statusCode=429",
                         "The request limit was reached.", "3001", "SERVICE")


def system_fault(status: int) -> QboFault:
    return QboFault(status, "10000", "An application error has occurred while processing your request",
                    f"System Failure Error: the service answered {status}; retry later", kind="SystemFault")


def first_error(body: Any) -> dict[str, Any]:
    """The first error of either fault shape, with lower-case keys (``message``/``detail``/``code``)."""
    if not isinstance(body, dict):
        return {}
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, dict):
        return {}
    errors = fault.get("Error") or fault.get("error")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return {}
    error = {str(k).lower(): v for k, v in errors[0].items()}
    error["type"] = fault.get("type")
    return error
