"""Helpers for the VTP tests: an in-process burstbus on the session loop, real peers as processes.

Twisted's reactor is bound to one asyncio loop for the life of the process, so every VTP test
runs on pytest-asyncio's session loop (``pytestmark = pytest.mark.asyncio(loop_scope="session")``).
Nothing here may block the loop: peers are awaited with asyncio subprocesses and polling.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from lxml import etree

from burstbus.broker.node import VTPNode
from burstbus.config import load_config
from burstbus.events import RecordedEvent
from burstbus.service import Core, Service, build_service
from tests import ports
from tests.waiting import DEADLINE, wait_for

BIN = Path(sys.executable).parent


def free_port() -> int:
    return ports.free_port()  # a block of its own per xdist worker (tests/ports.py)


def unique_ivorn(name: str) -> str:
    return f"ivo://test.example/vtp#{name}-{uuid.uuid4().hex[:12]}"




class Node:
    """burstbus (log, ingest, service with VTP) running in this process on ephemeral ports."""

    def __init__(self, core: Core, service: Service):
        self.core = core
        self.service = service
        found = service.part(VTPNode)
        assert found is not None
        self.vtp = found

    @classmethod
    async def start(cls, data_dir: Path, sections: dict[str, Any] | None = None, **vtp: Any) -> Node:
        """``vtp``: ``[vtp]`` options; ``sections``: other sections (``authority``, ``triggers``)."""
        options = {"receive_port": 0, "broadcast_port": 0, "authenticate_wait": 30.0, **vtp}
        overrides = {"data": {"dir": str(data_dir)}, "vtp": options, "nats": {"enabled": False}, "http": {"enabled": False}}
        config = load_config(environ={}, overrides={**overrides, **(sections or {})})
        core = await Core.open(config)
        service = build_service(core)
        service.start()
        node = cls(core, service)
        if config.vtp.receive:
            await asyncio.wait_for(node.vtp.receiver_ready.wait(), DEADLINE)
        if config.vtp.broadcast:
            await asyncio.wait_for(node.vtp.broadcaster_ready.wait(), DEADLINE)
        return node

    @property
    def receive_port(self) -> int:
        assert self.vtp.receiver is not None
        return self.vtp.receiver.port

    @property
    def broadcast_port(self) -> int:
        assert self.vtp.broadcaster is not None
        return self.vtp.broadcaster.port

    async def events(self, type_: str) -> list[RecordedEvent]:
        from burstbus.store.base import ReadFilter

        return await self.core.log.read(0, ReadFilter.of([type_]))

    async def wait_subscribers(self, n: int) -> None:
        assert self.vtp.broadcaster is not None
        broadcaster = self.vtp.broadcaster
        await wait_for(lambda: sum(s.authenticated for s in broadcaster.subscribers()) >= n, f"{n} authenticated subscribers")

    async def stop(self) -> None:
        """Stop the service, then close the core, each within DEADLINE. A step that overruns
        fails the test with every task's await chain, and the core is closed regardless (its
        SQLite threads would otherwise keep the interpreter from exiting: a hang, not a failure)."""
        self.service.stop()
        try:
            await within(self.service.wait(), DEADLINE, "the service to stop")
        finally:
            await within(self.core.close(), DEADLINE, "the core to close")


async def within(coro: Coroutine[Any, Any, Any], timeout: float, what: str) -> Any:
    """Await ``coro`` for at most ``timeout`` s; past that, raise with every task's await chain.
    The step keeps running (it is not cancelled: cancelling is what may have failed)."""
    step = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({step}, timeout=timeout)
    if not done:
        chains = "\n".join(await_chain(task) for task in asyncio.all_tasks() if task is not asyncio.current_task())
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; tasks:\n{chains}")
    return step.result()


def await_chain(task: asyncio.Task[Any]) -> str:
    """A task and what it is waiting on, coroutine by coroutine (``Task.print_stack`` shows only
    the outermost frame, which hid where a stop was stuck)."""
    lines = [repr(task)]
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            lines.append(f"    awaiting {awaited!r}")
            break
        lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return "\n".join(lines)


class Processes:
    """Peers started by a test; every one is stopped by its pid at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], cwd: Path, log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def comet_subscriber(procs: Processes, workdir: Path, port: int, *, name: str = "sub", filters: tuple[str, ...] = ()) -> Path:
    """A real Comet subscriber saving every event it receives; returns its save directory.
    Called again with the same name, it starts that subscriber again (same IVORN, event db)."""
    home = workdir / name
    saved = home / "saved"
    saved.mkdir(parents=True, exist_ok=True)
    args = [
        str(BIN / "twistd"), "-n", "--pidfile=", "-l", str(home / "twistd.log"), "comet",
        f"--remote=127.0.0.1:{port}", f"--local-ivo=ivo://test/{name}", f"--eventdb={home}",
        "--save-event", f"--save-event-directory={saved}",
    ] + [f"--filter={f}" for f in filters]
    procs.start(args, cwd=home)
    return saved


def comet_broker(procs: Processes, workdir: Path, name: str = "comet", ports: tuple[int, int] | None = None) -> tuple[int, int]:
    """A real Comet broker (receive + broadcast) on free ports; returns (receive, broadcast)."""
    home = workdir / name
    (home / "db").mkdir(parents=True)
    receive, broadcast = ports or (free_port(), free_port())
    procs.start([
        str(BIN / "twistd"), "-n", "--pidfile=", "-l", str(home / "twistd.log"), "comet",
        "--receive", f"--receive-port={receive}", "--broadcast", f"--broadcast-port={broadcast}",
        "--broadcast-test-interval=0", f"--local-ivo=ivo://test/{name}", f"--eventdb={home / 'db'}",
    ], cwd=home)
    return receive, broadcast


async def wait_port(port: int) -> None:
    async def up() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await wait_for(up, f"port {port} to listen")


async def sendvo(port: int, path: Path) -> tuple[int, str]:
    """Run ``comet-sendvo``; return its exit code and output."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "comet-sendvo"), "--host=127.0.0.1", f"--port={port}", "-f", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), DEADLINE)
    return proc.returncode or 0, out.decode(errors="replace")


def comet_filename(ivorn: str) -> str:
    """The file name Comet's save-event plugin gives an IVORN."""
    import string

    return "".join(x for x in ivorn.replace("/", "_") if x in string.digits + string.ascii_letters + "_.")


def frame(payload: bytes) -> bytes:
    return struct.pack("!i", len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readexactly(4)
        return await reader.readexactly(struct.unpack("!i", head)[0])
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def transport(message: bytes) -> tuple[str, str | None]:
    """(role, Meta/Result text) of a VTP transport message."""
    root = etree.fromstring(message)
    return root.get("role") or "", root.findtext("Meta/Result")


async def exchange(port: int, data: bytes, *, close_after_send: bool = False) -> tuple[str, str | None] | None:
    """Send raw bytes to a VTP receiver; the (role, reason) of its answer, or None if it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if close_after_send:
            writer.write_eof()
        answer = await asyncio.wait_for(read_frame(reader), DEADLINE)
        return transport(answer) if answer is not None else None
    finally:
        writer.close()
