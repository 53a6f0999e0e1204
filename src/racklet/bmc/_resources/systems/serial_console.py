"""The unit's serial console over WebSocket (``SerialConsole.WebSocket.ConsoleURI``).

A watcher first gets the lines the BMC already holds, then every new line as the UART
delivers it, one text message per line. The console is read-only here (``Interactive`` is
false): the twin's UART has no input side yet. At most ``MAX_CONSOLES`` watchers at once.

Authentication is the middleware's (a WebSocket upgrade carries the same ``X-Auth-Token``,
Basic or client-certificate credentials as any request), and watching a console needs
``ConfigureComponents``: a console can show secrets a ReadOnly account should not see.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from racklet.bmc._http.uris import SYSTEMS
from racklet.bmc._resources.systems.system import MAX_CONSOLES
from racklet.bmc._state.context import BmcContext


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


class ConsoleSocket:
    """The WebSocket endpoint: history first, then every new line until the client leaves."""

    def __init__(self, ctx: BmcContext) -> None:
        self.ctx = ctx

    async def serve(self, websocket: WebSocket) -> None:
        ctx = self.ctx
        if websocket.path_params["system_id"] != ctx.unit or ctx.console.watchers >= MAX_CONSOLES:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        queue = ctx.console.watch()
        reader = asyncio.create_task(_drain_client(websocket), name=f"bmc:{ctx.unit}:ws-read")
        try:
            for line in ctx.console.lines():
                await websocket.send_text(line.text)
            while not reader.done():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    break
                await websocket.send_text(getter.result().text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            ctx.console.unwatch(queue)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            with contextlib.suppress(RuntimeError, OSError):
                await websocket.close()


def route(ctx: BmcContext) -> WebSocketRoute:
    return WebSocketRoute(
        f"{SYSTEMS}/{{system_id}}/SerialConsole/WebSocket", ConsoleSocket(ctx).serve
    )
