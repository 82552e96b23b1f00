"""The loop lifecycle every actor shares: ``_halt`` waits for the loop, and a cancellation of whoever awaits
``_halt`` (a Ray actor call being cancelled, a shutdown) is never swallowed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from accord.actors.loop import LoopActor
from accord.config.load import loads
from tests.helpers import CRM_AND_ERP


class Stubborn(LoopActor):
    """A loop that ignores the stop flag and, once cancelled, takes until ``release`` to clean up."""

    def __init__(self, drain_timeout: str = "60s") -> None:
        super().__init__(loads(f'[supervisor]\ndrain_timeout = "{drain_timeout}"\n' + CRM_AND_ERP, env={}), "")
        self.cleaning = asyncio.Event()
        self.release = asyncio.Event()

    def start(self) -> None:
        self._launch(self._run(), "stubborn")

    async def _run(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cleaning.set()
            await self.release.wait()
            raise

    async def finish(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.release.set()
            await asyncio.wait([self._task])


@pytest.fixture
async def stubborn() -> AsyncIterator[Callable[[str], Stubborn]]:
    """Started Stubborn loops (by drain timeout), finished after the test whatever it found."""
    actors: list[Stubborn] = []

    def start(drain_timeout: str) -> Stubborn:
        actor = Stubborn(drain_timeout)
        actor.start()
        actors.append(actor)
        return actor

    yield start
    for actor in actors:
        await actor.finish()


async def test_a_cancelled_caller_stays_cancelled_while_the_loop_drains(
        stubborn: Callable[[str], Stubborn]) -> None:
    actor = stubborn("60s")
    caller = asyncio.create_task(actor._halt())
    await asyncio.sleep(0)  # the caller is now waiting for the loop
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert actor.running, "the caller's cancellation must not cancel the loop"


async def test_a_cancelled_caller_stays_cancelled_while_the_loop_cleans_up(
        stubborn: Callable[[str], Stubborn]) -> None:
    actor = stubborn("10ms")
    caller = asyncio.create_task(actor._halt())
    await actor.cleaning.wait()  # drain timed out: the loop was cancelled and is cleaning up
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_the_loops_own_cancellation_ends_the_wait_quietly(stubborn: Callable[[str], Stubborn]) -> None:
    actor = stubborn("60s")
    caller = asyncio.create_task(actor._halt())
    await asyncio.sleep(0)
    await actor.finish()
    await caller
    assert not actor.running


async def test_an_error_the_loop_ends_with_reaches_the_caller() -> None:
    class Failing(Stubborn):
        async def _run(self) -> None:
            await self._stop_requested.wait()
            raise RuntimeError("boom")

    actor = Failing()
    actor.start()
    with pytest.raises(RuntimeError, match="boom"):
        await actor._halt()
