"""A loopback TCP proxy for fault tests: it forwards bytes between clients
and a real server, and on demand cuts a connection after a request reached
the server and before its reply gets back (the ambiguous failure)."""

from __future__ import annotations

import asyncio


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._armed: bytes | None = None
        self.cuts = 0
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> "FaultProxy":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut_reply_to_next(self, marker: bytes) -> None:
        """Drop the connection instead of delivering the reply to the next
        request containing ``marker`` (the server still executes it)."""
        self._armed = marker

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        doomed = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self._armed is not None and self._armed in data:
                    self._armed = None
                    doomed.set()
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if doomed.is_set():  # the request ran on the server; its reply never arrives
                    self.cuts += 1
                    break
                client_w.write(data)
                await client_w.drain()
            client_w.close()
            server_w.close()

        tasks = {asyncio.create_task(upstream()), asyncio.create_task(downstream())}
        self._tasks |= tasks
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks -= tasks
