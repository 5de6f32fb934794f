"""A raw WebSocket client for emulator tests of JSON venues: send objects, read parsed frames, and
collect what the server sent up to the answer of a fresh application ping (the frames a request
caused, with nothing left in flight)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import orjson
from websockets.asyncio.client import ClientConnection


class JsonClient:
    """``ping``: the venue's application ping; ``pong``: the (field, value) its answer carries."""

    ping: ClassVar[dict[str, Any]]
    pong: ClassVar[tuple[str, str]]

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.last_pong: Any = None

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def recv(self, timeout: float = 2.0) -> Any:
        return orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def sync(self) -> list[Any]:
        """Every frame the server sent before it answered a fresh ping."""
        await self.send(self.ping)
        field, value = self.pong
        frames = []
        while (frame := await self.recv()).get(field) != value:
            frames.append(frame)
        self.last_pong = frame
        return frames

    async def request(self, message: Any) -> list[Any]:
        await self.send(message)
        return await self.sync()
