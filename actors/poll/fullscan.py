"""Deletes found by a full id scan, for systems without a delete feed (Harvest): the ids Accord has seen
there that the system no longer lists were deleted. Nothing is kept here; ``ids:{entity}:{system}`` is."""

from __future__ import annotations

from accord.actors.context import Context
from accord.connectors.base import Connector
from accord.connectors.spec import IdScanner
from accord.streams.replies import text_set


async def vanished_ids(ctx: Context, system: str, entity: str, connector: Connector) -> tuple[list[str], float]:
    """The ids of ``entity`` seen in ``system`` that it no longer has, and the seconds until the next scan."""
    if not isinstance(connector, IdScanner):
        raise TypeError(f"system `{system}` declares deletes by scan, but its connector "
                        f"{type(connector).__name__} has no scan_ids")
    live = {str(i) for i in await connector.scan_ids(entity)}
    known = text_set(await ctx.redis.smembers(ctx.keys.known_ids(entity, system)))
    return sorted(known - live), connector.scan_interval
