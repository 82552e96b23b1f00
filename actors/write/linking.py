"""Match rules before a create: a record a target already holds under the same key (same tax id, same name
and country...) is linked and updated instead of created again, and what the target owns of it is published
back as the target's. Exactly one candidate links; several are an exception for a person to resolve.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from accord.actors.context import Context
from accord.actors.governance import Ownership
from accord.actors.matching import match_keys
from accord.actors.write.outcome import Outcome, RecordWork
from accord.streams.records import ChangeRecord
from accord.streams.replies import text_set
from accord.streams.state import VERSION_FIELD


class Linker:
    def __init__(self, entity: str, rules: list[list[str]], ownership: Ownership, ctx: Callable[[], Context]) -> None:
        self.entity = entity
        self.rules = rules
        self.ownership = ownership
        self._ctx = ctx

    @property
    def ctx(self) -> Context:
        return self._ctx()

    async def link_matches(self, target: str, works: list[RecordWork], outcome: Outcome) -> None:
        """Link a create to the target's existing record when a match rule finds exactly one."""
        rules = self.rules
        if not rules:
            return
        keyed = [(work, sorted(match_keys(rules, work.fields).items())) for work in works if work.source]
        members = await self._members(target, [(rule, key) for _, keys in keyed for rule, key in keys])
        for work, keys in keyed:
            for rule, key in keys:
                if not members.get((rule, key)):
                    continue  # the common case: nothing in the target has this key
                candidates = await self._free(target, members[(rule, key)], work.gid)
                if len(candidates) > 1:
                    outcome.fail_work(work, "ambiguous_match", (
                        f"{len(candidates)} {target} records match {self.entity} {work.gid} on "
                        f"{'+'.join(rules[rule])} ({', '.join(sorted(candidates))}); link the right one or fix "
                        "the duplicates, then retry"))
                    work.source = None
                    break
                if candidates:
                    await self._link(target, work, candidates[0])
                    outcome.counts[f"matched|{target}|{self.entity}"] += 1
                    break

    async def _members(self, target: str, keys: list[tuple[int, str]]) -> dict[tuple[int, str], list[str]]:
        """The target's record ids under each match key, in one round trip for the whole sweep."""
        if not keys:
            return {}
        ctx = self.ctx
        async with ctx.redis.pipeline(transaction=False) as pipe:
            for rule, key in keys:
                pipe.smembers(ctx.keys.match(self.entity, target, rule, key))
            replies = await pipe.execute()
        return {k: sorted(text_set(reply)) for k, reply in zip(keys, replies, strict=True)}

    async def _free(self, target: str, members: list[str], gid: str) -> list[str]:
        """Those of ``members`` not already paired with another real record (known outside the target)."""
        ctx = self.ctx
        gids = await ctx.identity.gids_for(self.entity, target, members)
        others = sorted({g for g in gids.values() if g != gid})
        paired = {g for g, xref in zip(others, await ctx.identity.xrefs(self.entity, others), strict=True)
                  if any(system != target for system in xref)}
        return [m for m in members if gids.get(m) not in paired]

    async def _link(self, target: str, work: RecordWork, target_id: str) -> None:
        """Update the matched record instead of creating one; publish back what the target owns."""
        ctx = self.ctx
        assert work.source is not None
        previous = (await ctx.identity.gids_for(self.entity, target, [target_id])).get(target_id)
        work.target_id = target_id
        work.linked_from = previous if previous and previous != work.gid else None
        seen, _ = await ctx.projections.load(target, self.entity, [target_id])
        projection = seen[0] or {}
        # the target keeps every value it owns, and its blanks are filled from the source (as on a create)
        blanks = {k: v for k, v in self.ownership.synced_with(target, work.fields).items()
                  if k in self.ownership.owned_by(target) and projection.get(k) is None}
        work.fields = {**self.ownership.writable_to(target, work.fields), **blanks}
        work.version = projection.get(VERSION_FIELD)
        back = {k: v for k, v in projection.items()
                if k in self.ownership.owned_by(target) and v is not None}
        if back:
            version = int(projection.get(VERSION_FIELD) or 0)
            work.link_back = ChangeRecord.taken_over("link", target, target_id, version, back, cause=work.source)
        logger.bind(entity=self.entity, target=target, gid=work.gid).info(
            "matched existing {} record {}: linked, not created", target, target_id)
