"""A tiny asyncio TCP proxy for simulating a database that goes away and comes back.

    async with TcpProxy("127.0.0.1", 5432) as proxy:   # listens on 127.0.0.1:<proxy.port>
        await proxy.cut()        # the server is gone: every connection dropped, new ones refused
        await proxy.restore()    # forward again, on the same port
        await proxy.partition()  # the network is gone: connections stay open but go silent
        await proxy.restore()    # traffic flows again

It runs on the test's own event loop, beside the app under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = "127.0.0.1"
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._silent: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> TcpProxy:
        await self._listen()
        return self

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def cut(self) -> None:
        """Close every open connection and refuse new ones (the server went away)."""
        await self._stop_listening()
        self._abort_all()
        await self._settle()

    async def partition(self) -> None:
        """Stop all traffic: open connections stall, new ones are accepted but never answered."""
        self._flowing.clear()

    async def restore(self) -> None:
        """Forward again: listen (same port) if cut; stalled connections resume."""
        for writer in list(self._silent):
            writer.transport.abort()
        self._silent.clear()
        self._flowing.set()
        if self._server is None:
            await self._listen()

    async def close(self) -> None:
        await self._stop_listening()
        self._flowing.set()
        self._abort_all()
        for task in list(self._tasks):
            task.cancel()
        await self._settle()

    async def _listen(self) -> None:
        # Reuse the port chosen the first time, so the app's URL keeps pointing here.
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True, family=socket.AF_INET
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _abort_all(self) -> None:
        for writer in [*self._writers, *self._silent]:
            writer.transport.abort()
        self._writers.clear()
        self._silent.clear()

    async def _settle(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if not self._flowing.is_set():
            self._silent.add(client_w)  # accepted, never answered; restore/close aborts it
            return
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))
        for source, sink in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await source.read(65536)
                if not data:
                    break
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(sink)
            with contextlib.suppress(Exception):
                sink.transport.abort()
