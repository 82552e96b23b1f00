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


def test_its_connections_send_without_waiting_for_acks() -> None:
    """TCP_NODELAY on every connection (regression: asyncio sets it on a server it binds itself, not on one
    handed a socket; each POST then waited ~40 ms for the client's delayed ACK, and a naive benchmark client
    ran at a tenth of its speed). Linux hands it down from the listening socket to each accepted one."""
    server = SandboxServer(_app())
    client = socket.create_connection(("127.0.0.1", server.port))
    try:
        accepted, _ = server._socket.accept()  # what uvicorn will be given for this client
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        accepted.close()
    finally:
        client.close()
        server.stop()
