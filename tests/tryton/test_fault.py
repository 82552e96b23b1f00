"""The Tryton server killed between two calls of the connector: a retryable error, then it works again."""

from __future__ import annotations

import pytest

from accord.connectors.base import WriteOp
from accord.connectors.errors import Retryable
from accord.connectors.tryton.client import TrytonConnector
from accord.sandboxes.tryton.runner import TrytonServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # the first test may build the template


async def test_a_killed_and_restarted_server_is_retryable_then_works(connector: TrytonConnector,
                                                                    tryton_server: TrytonServer) -> None:
    first = await connector.fetch("account", None)
    made, = await connector.write("account", [WriteOp(gid="g-before", kind="upsert", key="k1",
                                                      fields={"name": "Before the crash"})])
    assert made.ok, made.error
    tryton_server.kill()  # SIGKILL: no checkpoint, committed data is in the WAL
    with pytest.raises(Retryable):
        await connector.fetch("account", first.cursor)
    lost, = await connector.write("account", [WriteOp(gid="g-during", kind="upsert", key="k2",
                                                      fields={"name": "During the crash"})])
    assert not lost.ok and isinstance(lost.error, Retryable)
    tryton_server.start()
    page = await connector.fetch("account", first.cursor)  # the same session token: Tryton keeps it in its DB
    assert [r.fields["name"] for r in page.records if r.gid == "g-before"] == ["Before the crash"]
    again, = await connector.write("account", [WriteOp(gid="g-during", kind="upsert", key="k2",
                                                       fields={"name": "During the crash"})])
    assert again.ok and again.created, again.error
