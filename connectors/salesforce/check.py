"""The Salesforce connection check (``accord check --connect``): mint a token with the configured client
credentials, read the API versions and ``/limits``, and describe every sObject the configured entities
use, reporting each object and field the field tables (``objects``) need that the org lacks or hides
from the integration user, an Accord id field that is not a unique External ID, and a field Accord
writes that the user may not edit.

Every call is a read; the token is minted afresh (a cached one would not prove the configured secret).
"""

from __future__ import annotations

from typing import Any

from accord.connectors.base import CallStats, MemoryTokenCache
from accord.connectors.check import CheckContext, Finding, Report, with_timeout
from accord.connectors.errors import Permanent
from accord.connectors.salesforce.fieldmap import EntityMap
from accord.connectors.salesforce.objects import ENTITIES
from accord.connectors.salesforce.session import SalesforceSession
from accord.connectors.salesforce.settings import SalesforceSettings

Described = dict[str, dict[str, Any]]  # field name -> its describe entry


async def check_connection(settings: SalesforceSettings, context: CheckContext) -> Report:
    """The org's answer to the checks above (see ``accord.connectors.check`` for what errors mean)."""
    session = SalesforceSession(with_timeout(settings, context.timeout), system=context.name,
                                token_cache=MemoryTokenCache(), budget=None, transport=context.transport,
                                stats=CallStats())
    try:
        version = await _version(session, settings)
        if version is not None:
            return Report(findings=[version])
        about = await _limits(session, settings)
        findings: list[Finding] = []
        for entity, emap in ENTITIES.items():
            if entity in context.entities:
                findings += await _object(session, settings, context, emap)
        return Report(about=about, findings=findings)
    finally:
        await session.aclose()


async def _version(session: SalesforceSession, settings: SalesforceSettings) -> Finding | None:
    """A finding when the org does not offer ``api_version`` (the token is minted on the way)."""
    offered = await session.request_json("GET", "/services/data")
    versions = [str(v.get("version")) for v in offered if isinstance(v, dict)] if isinstance(offered, list) else []
    if not versions or settings.api_version in versions:
        return None
    return Finding(kind="missing", what="api_version", value=f"{settings.api_version!r} is not offered by the org "
                   f"(it offers {versions[0]} to {versions[-1]})",
                   fix=f"set api_version = \"{versions[-1]}\" in the system's settings")


async def _limits(session: SalesforceSession, settings: SalesforceSettings) -> str:
    """The API version and the daily request quota used (reading /limits needs "View Setup and
    Configuration"; without it only the version is told)."""
    try:
        body = await session.request_json("GET", "limits")
    except Permanent:
        return f"API v{settings.api_version}"
    daily = body.get("DailyApiRequests", {}) if isinstance(body, dict) else {}
    used = int(daily.get("Max", 0)) - int(daily.get("Remaining", 0))
    return f"API v{settings.api_version}, {used} of {daily.get('Max', '?')} daily API requests used"


async def _object(session: SalesforceSession, settings: SalesforceSettings, context: CheckContext,
                  emap: EntityMap) -> list[Finding]:
    """What ``emap``'s sObject lacks for the fields the configuration syncs with it."""
    try:
        body = await session.request_json("GET", f"sobjects/{emap.sobject}/describe")
    except Permanent as exc:
        if exc.status not in (403, 404):
            raise
        return [_missing_object(context, emap)]
    fields: Described = {str(f.get("name")): f for f in body.get("fields", []) if isinstance(f, dict)}
    needed = _needed(settings, context, emap)
    findings = [_missing_field(settings, context, emap, name, users) for name, users in needed.items()
                if name not in fields]
    findings += _external_id(settings, emap, fields)
    findings += _read_only(settings, context, emap, fields)
    return findings


def _needed(settings: SalesforceSettings, context: CheckContext, emap: EntityMap) -> dict[str, list[str]]:
    """Wire field -> the canonical fields (or "the Accord id", "mappings") that need it."""
    excluded = context.excluded(emap.entity)
    needed: dict[str, list[str]] = {settings.external_id_field: ["the Accord id"]}
    for fmap in emap.active(settings.multi_currency):
        if fmap.canonical not in excluded:
            for name in fmap.wire:
                needed.setdefault(name, []).append(f"{emap.entity}.{fmap.canonical}")
    use = context.entities.get(emap.entity)
    for name in use.wire_fields if use is not None else ():
        needed.setdefault(name, []).append(f"mappings.{context.name}.{emap.entity}")
    return needed


def _missing_object(context: CheckContext, emap: EntityMap) -> Finding:
    how = ("deploy the custom object with its fields (accord.connectors.salesforce.objects lists them)"
           if emap.sobject.endswith("__c") else "grant the integration user access to the object")
    return Finding(kind="missing", what=emap.sobject, value=f"no such object for the integration user "
                   f"(entity {emap.entity})", fix=f"{how}, or remove `{context.name}` from "
                   f"entities.{emap.entity}.systems")


def _missing_field(settings: SalesforceSettings, context: CheckContext, emap: EntityMap, name: str,
                   users: list[str]) -> Finding:
    what = f"{emap.sobject}.{name}"
    value = f"missing or hidden from the integration user (used by {', '.join(users)})"
    if name == "CurrencyIsoCode":
        fix = "multi-currency is off in this org: set multi_currency = false in the system's settings"
    elif name == settings.external_id_field:
        fix = (f"create {name} on {emap.sobject} as a unique External ID text field and grant the integration "
               "user read/edit access, or set external_id_field to the field that holds the Accord id")
    else:
        made = f"create the custom field on {emap.sobject} and " if name.endswith("__c") else ""
        canonical = [u.split(".", 1)[1] for u in users if u.startswith(f"{emap.entity}.")]
        names = ", ".join(f'"{c}"' for c in canonical)
        skip = f", or leave it out: add {names} to entities.{emap.entity}.exclude.{context.name}" if canonical else ""
        fix = f"{made}grant the integration user read/edit access (field-level security){skip}"
    return Finding(kind="missing", what=what, value=value, fix=fix)


def _external_id(settings: SalesforceSettings, emap: EntityMap, fields: Described) -> list[Finding]:
    field = fields.get(settings.external_id_field)
    if field is None or (field.get("externalId") and field.get("unique")):
        return []
    return [Finding(kind="missing", what=f"{emap.sobject}.{settings.external_id_field}",
                    value="not a unique External ID field (upserts by it are refused)",
                    fix="edit the field in Setup: tick External ID and Unique")]


def _read_only(settings: SalesforceSettings, context: CheckContext, emap: EntityMap,
               fields: Described) -> list[Finding]:
    """Fields Accord writes that the integration user may neither create nor update."""
    excluded = context.excluded(emap.entity)
    written = {name for fmap in emap.active(settings.multi_currency)
               if not fmap.read_only and fmap.canonical not in excluded for name in fmap.wire}
    locked = sorted(name for name in written if name in fields
                    and not (fields[name].get("createable") or fields[name].get("updateable")))
    return [Finding(kind="missing", what=f"{emap.sobject}.{name}", value="read-only for the integration user",
                    fix="grant edit access to the field (field-level security)") for name in locked]
