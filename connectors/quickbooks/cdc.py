"""Change data capture reads of one realm that arrive together go as one ``/cdc`` request.

QuickBooks' ``/cdc`` takes a list of entities. A poller polls its due entities concurrently
(``accord.actors.poll.poller``), so the reads that arrive within ``GATHER_S`` of each other are sent as one
request from the earliest ``changedSince`` among them (one call instead of one per entity: in the demo,
CDC was more than half of the ERP's calls). Each reader gets only its entity's objects changed at or after
its own ``changedSince`` (less a second: stamps are to the second), which is what its own call would have
returned, or a few repeats its cursor skips. A response holds at most
``CDC_CAP`` objects in all, cut anywhere when full: then every reader in it is told it was capped and
pages its window through the query instead, as after a capped call of its own.

What survives a crash: nothing; only reads in flight are held here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from accord.connectors.quickbooks.cursor import parse_time

CDC_CAP = 1000  # QBO returns at most 1000 objects per CDC response (all entities together)
GATHER_S = 0.02  # how long the first read waits for others to join its request
SLACK_S = 1.0  # objects are stamped to the second: one stamped just before a reader's time may be newer


class CdcRead(NamedTuple):
    objects: list[dict[str, Any]]
    body: dict[str, Any]  # the whole response (its ``time`` is the next watermark)
    capped: bool


class _Reader(NamedTuple):
    entity: str
    since: float
    changed_since: str
    answer: asyncio.Future[CdcRead]


def _updated_at(obj: dict[str, Any]) -> float | None:
    stamp = (obj.get("MetaData") or {}).get("LastUpdatedTime")
    try:
        return parse_time(stamp).timestamp() if isinstance(stamp, str) else None
    except ValueError:
        return None


def _objects_by_entity(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    blocks: dict[str, list[dict[str, Any]]] = {}
    for response in body.get("CDCResponse") or []:
        for block in response.get("QueryResponse") or []:
            for name, objects in block.items():
                if isinstance(objects, list):
                    blocks.setdefault(name, []).extend(objects)
    return blocks


class CdcGather:
    """Coalesces concurrent ``read`` calls into one ``call(params)`` (``GET /cdc`` with ``params``)."""

    def __init__(self, call: Callable[[dict[str, str]], Awaitable[dict[str, Any]]]) -> None:
        self._call = call
        self._readers: list[_Reader] = []
        self._sending: asyncio.Task[None] | None = None  # gathering readers now
        self._in_flight: set[asyncio.Task[None]] = set()  # strong references until each request ends

    async def read(self, entity: str, changed_since: str) -> CdcRead:
        """``entity``'s objects changed at or after ``changed_since`` (an ISO time QuickBooks accepts)."""
        answer: asyncio.Future[CdcRead] = asyncio.get_running_loop().create_future()
        self._readers.append(_Reader(entity, parse_time(changed_since).timestamp(), changed_since, answer))
        if self._sending is None:  # the first reader's task context (its request priority) sends it
            self._sending = asyncio.create_task(self._send())
            self._in_flight.add(self._sending)
            self._sending.add_done_callback(self._finished)
        return await answer

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if task is self._sending:  # cancelled before it took its readers: they are cancelled too
            readers, self._readers, self._sending = self._readers, [], None
            for reader in readers:
                reader.answer.cancel()

    async def _send(self) -> None:
        readers: list[_Reader] = []
        try:
            await asyncio.sleep(GATHER_S)
            readers, self._readers, self._sending = self._readers, [], None
            earliest = min(readers, key=lambda r: r.since).changed_since
            entities = ",".join(sorted({r.entity for r in readers}))
            body = await self._call({"entities": entities, "changedSince": earliest})
        except BaseException as exc:  # every reader of this request gets the failure (cancelled too)
            for reader in readers:
                if not reader.answer.done():
                    reader.answer.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._answer(readers, body)

    @staticmethod
    def _answer(readers: list[_Reader], body: dict[str, Any]) -> None:
        blocks = _objects_by_entity(body)
        capped = sum(len(objects) for objects in blocks.values()) >= CDC_CAP
        for reader in readers:
            floor = reader.since - SLACK_S
            mine = [o for o in blocks.get(reader.entity, []) if (_updated_at(o) or floor) >= floor]
            if not reader.answer.done():
                reader.answer.set_result(CdcRead(mine, body, capped))
