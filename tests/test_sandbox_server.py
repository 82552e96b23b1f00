"""A sandbox server holds its port from the moment it is made (regression: it picked a free port, closed
it, and let uvicorn bind it later; in between a Ray worker or the previous run's server could take it, and
a benchmark died with "address already in use" after minutes of work)."""

from __future__ import annotations

import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from accord.sandboxes.server import SandboxServer


def _app() -> Starlette:
    async def hello(_: object) -> PlainTextResponse:
        return PlainTextResponse("hello")
    return Starlette(routes=[Route("/", hello)])


def test_the_port_is_held_from_construction_and_served_after_start() -> None:
    server = SandboxServer(_app())
    intruder = socket.socket()
    with pytest.raises(OSError):  # nobody can take the port between choosing it and serving on it
        intruder.bind(("127.0.0.1", server.port))
    intruder.close()
    server.start()
    try:
        assert httpx.get(server.url + "/").text == "hello"
    finally:
        server.stop()


def test_a_port_in_use_is_refused_with_the_port_named() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port}"):
            SandboxServer(_app(), port=port)
    finally:
        holder.close()
