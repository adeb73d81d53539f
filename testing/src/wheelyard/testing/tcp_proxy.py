"""A TCP forwarder tests can cut and restore, to make a real backend unreachable on demand.

Runs in its own thread with its own event loop, so it works for a server in another process
and for synchronous and asynchronous tests alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

#: Every port `free_port` handed out in this process.
_handed_out: set[int] = set()
_handing_out = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that this process has
    not handed out before: callers bind to it later (a split topology picks all its ports
    before starting any process), and the kernel may give a port it just gave for port 0
    again once the probe released it (two replicas once got one port: the second could not
    listen, and the gateway sent proxy requests to the index)."""
    with _handing_out:
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host:target_port` until `cut()`.

    While cut, open connections are closed and new ones are accepted then closed at once,
    which is what a client sees when a backend dies.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TcpProxy:
        """Start listening; returns self."""
        self._thread.start()
        self._ready.wait(5)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self._cut = True

        def drop() -> None:
            for w in list(self._writers):
                w.close()
            self._writers.clear()

        self._loop.call_soon_threadsafe(drop)

    def restore(self) -> None:
        """Forward again."""
        self._cut = False

    def stop(self) -> None:
        """Close everything and end the thread."""
        self.cut()

        async def shutdown() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
