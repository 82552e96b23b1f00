"""How the ``TrytonConnector`` reads and writes each canonical entity: one ``EntityIO`` per entity, over
the session. Here the base and the party-backed entities (``account`` ← ``party.party``, ``resource`` ←
``company.employee`` + its party); projects, tasks and time entries are in ``works``.

An ``EntityIO`` names its model, the fields a listing reads, the domain narrowing the model to the entity,
its keyset listings (``streams``: ``w`` on ``write_date``, ``c`` on ``create_date`` for never-written
records, plus any the entity adds), how a page's rows are expanded (sub-records read in one call per
kind), how a row becomes a ``SourceRecord``, where its gid lives (``gid_domain``), and its create and
update. Every update writes each record with the ``_timestamp`` read just before (Tryton's optimistic
lock): an edit made in Tryton in between is a retryable ``TrytonConcurrency``, never overwritten.

What survives a crash: only what Tryton committed. A resource is two creates (its party, then the
employee): the party carries the gid identifier, so a create repeated after a crash between the two
reuses that party instead of making a second one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, ClassVar

from accord.connectors.base import SourceRecord, WriteOp
from accord.connectors.errors import Permanent
from accord.connectors.tryton import mapping as m
from accord.connectors.tryton import psa
from accord.connectors.tryton.session import TrytonSession

UNFILTERED = {"active_test": False}
BASE_STREAMS = {"w": "write_date", "c": "create_date"}


async def read_by_id(session: TrytonSession, model: str, ids: Sequence[int], fields: Sequence[str]
                     ) -> dict[int, dict[str, Any]]:
    """``model.read`` of the distinct ``ids`` (none: no call), by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.call(f"model.{model}.read", wanted, list(fields), context=UNFILTERED)
    return {int(r["id"]): r for r in rows}


async def locked_write(session: TrytonSession, model: str, record_id: int, stamp: Any, vals: dict[str, Any]) -> None:
    """``model.write`` of one record under the ``_timestamp`` read before (nothing to write: no call)."""
    if vals:
        await session.call(f"model.{model}.write", [record_id], vals,
                           context={"_timestamp": {f"{model},{record_id}": stamp}})


def gids_in(field: str, values: Sequence[str]) -> list[Any]:
    """A domain matching records whose ``field`` contains one of ``values``."""
    return ["OR", *[[field, "like", f"%{value}%"] for value in values]]


class EntityIO:
    """One canonical entity on one Tryton model (see the module docstring)."""

    entity: str
    model: str
    fields: tuple[str, ...]
    streams: ClassVar[dict[str, str]] = BASE_STREAMS
    read_only: ClassVar[bool] = False  # Accord never writes it: every write op is ``refuse``d, nothing sent

    def __init__(self, entity: str, session: TrytonSession) -> None:
        self.entity = entity
        self.session = session

    def domain(self) -> list[Any]:
        return []

    def stream_domain(self, key: str) -> list[Any]:
        if key == "w":
            return [["write_date", "!=", None]]
        if key == "c":
            return [["write_date", "=", None]]
        return [[self.streams[key], "!=", None]]

    async def keep(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of a listing page that are records of the entity (the domain cannot say it all)."""
        return rows

    async def expand(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return rows

    def to_canonical(self, row: dict[str, Any]) -> SourceRecord:
        raise NotImplementedError

    def gid_domain(self, gids: Sequence[str]) -> list[Any]:
        raise NotImplementedError

    def refuse(self, op: WriteOp) -> Permanent:
        """Why a write of a ``read_only`` entity is refused."""
        return Permanent(m.SYSTEM, f"{self.entity} {op.gid} is read only in Tryton", code="read_only")

    async def create(self, op: WriteOp) -> int:
        """Create the record of ``op`` (the caller holds the database's create lock); its id."""
        raise NotImplementedError

    async def update(self, op: WriteOp, current: dict[str, Any]) -> None:
        """Make the expanded record ``current`` (read with its ``_timestamp``) hold ``op``'s fields."""
        raise NotImplementedError

    async def _create_one(self, vals: dict[str, Any], model: str | None = None) -> int:
        new_id, = await self.session.call(f"model.{model or self.model}.create", [vals])
        return int(new_id)


class PartyIO(EntityIO):
    """``account`` ← ``party.party`` (mapping in ``mapping``). A party that is a company's own or an
    employee's is a person or the firm, not an account: a listing leaves it out (a party that becomes an
    employee after it was read as an account is left as it was)."""

    model = m.PARTY
    subs = (("addresses", "party.address", m.ADDRESS_FIELDS),
            ("contact_mechanisms", "party.contact_mechanism", m.MECHANISM_FIELDS),
            ("identifiers", "party.identifier", m.IDENTIFIER_FIELDS))
    # the sub-records come with the party, as dotted fields (``addresses.street`` → ``"addresses."``: a list)
    fields = (*m.PARTY_FIELDS, *(f"{key}.{field}" for key, _, names in subs for field in names))

    async def keep(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The parties of ``rows`` that are not a company's or an employee's (two searches a page)."""
        ids = sorted({int(row["id"]) for row in rows})
        if not ids:
            return rows
        drop: set[int] = set()
        for model in ("company.company", psa.EMPLOYEE):
            found = await self.session.call(f"model.{model}.search_read", [["party", "in", ids]], 0, None, None,
                                            ["party"], context=UNFILTERED)
            drop.update(int(r["party"]) for r in found)
        return [row for row in rows if int(row["id"]) not in drop]

    async def expand(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Party rows with their addresses, contact mechanisms and identifiers: read with the party (dotted
        fields, no call), or by id for a row read without them (three calls a page)."""
        for key, model, fields in self.subs:
            unread = [row for row in rows if f"{key}." not in row]
            found = await read_by_id(self.session, model, [i for row in unread for i in row.get(key) or []], fields)
            for row in rows:
                nested = row.pop(f"{key}.", None)
                row[key] = nested if nested is not None else [found[i] for i in row.get(key) or [] if i in found]
        return rows

    def to_canonical(self, row: dict[str, Any]) -> SourceRecord:
        return m.to_canonical(self.entity, row)

    def gid_domain(self, gids: Sequence[str]) -> list[Any]:
        return [["identifiers.code", "in", [f"{m.GID_PREFIX}{gid}" for gid in gids]]]

    async def create(self, op: WriteOp) -> int:
        return await self._create_one({**m.create_values(op.fields, op.gid), **op.wire})

    async def update(self, op: WriteOp, current: dict[str, Any]) -> None:
        vals = {**m.update_values(op.fields, current), **op.wire}
        await locked_write(self.session, self.model, int(current["id"]), current["_timestamp"], vals)


class EmployeeIO(EntityIO):
    """``resource`` ← ``company.employee``; name and email live on its party, so a third listing (``p``)
    follows the parties' ``write_date`` (a party edit does not touch the employee's), and the version is
    the later of the two. ``active`` follows the calendar (start/end dates) with no stamp moving: a
    resource whose end date passes is seen at its next edit or the next full read."""

    model = psa.EMPLOYEE
    fields = psa.EMPLOYEE_FIELDS
    streams: ClassVar[dict[str, str]] = {**BASE_STREAMS, "p": "party.write_date"}

    async def expand(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Employee rows with their party (name, email, stamps) and its identifiers (two calls a page)."""
        parties = await read_by_id(self.session, m.PARTY, [int(r["party"]) for r in rows],
                                   [*psa.EMPLOYEE_PARTY_FIELDS, "_timestamp"])
        idents = await read_by_id(self.session, "party.identifier",
                                  [i for p in parties.values() for i in p.get("identifiers") or []], ["code"])
        for party in parties.values():
            party["accord_identifiers"] = [idents[i] for i in party.get("identifiers") or [] if i in idents]
        for row in rows:
            row["accord_party"] = parties.get(int(row["party"]))
        return rows

    def to_canonical(self, row: dict[str, Any]) -> SourceRecord:
        party = row.get("accord_party") or {}
        version = psa.version_of(row, party)
        return SourceRecord(id=str(row["id"]), version=version, fields=psa.employee_fields(row, dt.date.today()),
                            gid=psa.employee_gid(party), modified_ms=version // 1000)

    def gid_domain(self, gids: Sequence[str]) -> list[Any]:
        return [["party.identifiers.code", "in", [f"{m.RESOURCE_MARKER}{gid}" for gid in gids]]]

    async def create(self, op: WriteOp) -> int:
        if not op.fields.get("name"):
            raise Permanent(psa.SYSTEM, f"cannot create a Tryton employee for {op.gid}: resource.name missing",
                            code="validation")
        marker = f"{m.RESOURCE_MARKER}{op.gid}"
        found = await self.session.call(f"model.{m.PARTY}.search", [["identifiers.code", "=", marker]], 0, 1,
                                        None, context=UNFILTERED)  # a party left by a crashed attempt
        if found:
            party = int(found[0])
        else:
            vals: dict[str, Any] = {"name": op.fields["name"], "identifiers": [["create", [{"code": marker}]]]}
            if op.fields.get("email"):
                vals["contact_mechanisms"] = [["create", [{"type": "email", "value": op.fields["email"]}]]]
            party = await self._create_one(vals, m.PARTY)
        today = dt.date.today()
        _, end = psa.end_date_for(op.fields.get("active"), None, today)
        return await self._create_one({"party": party, "end_date": end, **op.wire})

    async def update(self, op: WriteOp, current: dict[str, Any]) -> None:
        party = current.get("accord_party") or {}
        party_id = int(current["party"])
        vals: dict[str, Any] = {"name": op.fields["name"]} if "name" in op.fields else {}
        if "email" in op.fields and op.fields["email"] != (party.get("email") or None):
            mechs = await self.session.call("model.party.contact_mechanism.search",
                                            [["party", "=", party_id], ["type", "=", "email"]], 0, 1, None)
            email = op.fields["email"]
            vals["contact_mechanisms"] = m.x2many({"id": mechs[0]} if mechs else None, email,
                                                  {"type": "email", "value": email}) or []
        await locked_write(self.session, m.PARTY, party_id, party.get("_timestamp"), vals)
        change, end = psa.end_date_for(op.fields.get("active"), current.get("end_date"), dt.date.today())
        own = {**({"end_date": end} if "active" in op.fields and change else {}), **op.wire}
        await locked_write(self.session, self.model, int(current["id"]), current["_timestamp"], own)
