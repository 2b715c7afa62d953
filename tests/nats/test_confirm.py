"""``confirm_sent``: the PING goes out after what was sent before it (nats-py's flush: before)."""

from __future__ import annotations

import asyncio
import contextlib

import nats

from burstbus.bridges.nats.confirm import confirm_sent


async def test_the_ping_follows_the_commands_it_confirms() -> None:
    """A peer on loopback that speaks just enough NATS to record the order of commands."""
    seen: list[str] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"order","version":"2.10.0","proto":1,"headers":true,"max_payload":1048576}\r\n')
        buffer = b""
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                buffer += data
                while b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    seen.append(line.split(b" ", 1)[0].decode())
                    if line == b"PING":
                        writer.write(b"PONG\r\n")

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        seen.clear()

        async def ignore(msg: object) -> None:
            pass

        await nc.subscribe("telescope.colibri.voevent", cb=ignore)
        await confirm_sent(nc, 10)
        await nc.publish("burstbus.events.x", b"{}")
        await confirm_sent(nc, 10)
        commands = [c for c in seen if c in ("SUB", "PUB", "PING")]
        assert commands == ["SUB", "PING", "PUB", "PING"]
    finally:
        await nc.close()
        server.close()
        await server.wait_closed()
