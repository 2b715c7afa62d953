"""The service runner: opens the log, starts every component on one asyncio loop, stops cleanly.

Components are long-running parts (:class:`burstbus.component.Component`): the core's own
followers (projections, burst identifier) and whatever the registered packages build. Each
runs under a supervisor that logs a failure and restarts it with backoff, so one broken
consumer never takes the log down.

A lock file in the data directory marks a running service, so commands that rewrite derived
state (``rebuild``) refuse to run under it, and ``import`` knows whether to bring the
projections up to date itself or leave that to the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from burstbus.component import (
    Component,
    ComponentPackage,
    Host,
    MetricsResult,
    StartupError,
    Task,
    installed_packages,
)
from burstbus.config import Config, ConfigError
from burstbus.events import utc_now
from burstbus.handlers.bursts import BurstIdentifier
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.projections.registry import all_projections
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.sqlite import SQLiteEventLog

if TYPE_CHECKING:
    from burstbus.signing.signatures import Signatures

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_FILE = "burstbus.lock"
#: Stopping: a component still running this many seconds after its cancel is cancelled again …
RECANCEL_AFTER = 2.0
#: … and reported, with where it waits, every this many seconds …
STOP_REPORT_AFTER = 10.0
#: … and given up on after this many: the service stops anyway (the log still closes, so
#: every acknowledged append is kept), so SIGTERM always ends ``burstbus run`` within this bound.
STOP_BOUND = 30.0
#: A failed component waits this long before its first restart, doubling up to the maximum …
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
#: … and a component that ran this many seconds before failing starts again from the first
#: step: an outage in the afternoon is not punished for one in the morning.
HEALTHY_AFTER = 60.0


class ServiceRunning(RuntimeError):
    """Another ``burstbus run`` holds the data directory."""


@contextlib.contextmanager
def data_dir_lock(data_dir: Path):
    """Hold the data directory's service lock (non-blocking); raise ServiceRunning if taken."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    handle: IO[str] = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ServiceRunning(f"burstbus is already running on {data_dir} (pid {holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def service_running(data_dir: Path) -> bool:
    try:
        with data_dir_lock(data_dir):
            return False
    except ServiceRunning:
        return True


async def open_log(config: Config) -> EventLog:
    """The configured event log (every command and the service open it this one way).

    ``sqlite`` is the store's own; any other ``[log] backend`` is opened by the package that
    registers it (``ComponentPackage.log_backends``), which may own a server it starts and
    stops with the log."""
    if config.log.backend != "sqlite":
        for package in installed_packages():
            if config.log.backend in package.log_backends:
                return await package.log_backends[config.log.backend](config)
        raise ConfigError("log.backend", f"no installed package provides the {config.log.backend!r} log")
    return await SQLiteEventLog.open(config.log_path, synchronous=config.log.synchronous, poll_interval=config.log.poll_interval)


async def open_signatures(config: Config) -> Signatures | None:
    """The ingest's signature checks (``[signatures]``), or None when they are off. gpg runs
    here once (off the loop) to check the program, the keyring and the signing key; a problem
    is a :class:`StartupError` naming the setting (one line from the CLI, no traceback)."""
    if not config.signatures.enabled:
        return None
    from burstbus.signing.signatures import KeyringError, Signatures

    try:
        return await asyncio.to_thread(Signatures.open, config.signatures, config.data_dir)
    except KeyringError as exc:
        raise StartupError(exc.setting, exc.problem) from None


@dataclass
class Core:
    """The pieces every command works with: the log, handler state, projections, ingest."""

    config: Config
    log: EventLog
    state: StateStore
    projections: ProjectionRunner
    ingest: Ingest
    bursts: BurstIdentifier

    @classmethod
    async def open(cls, config: Config) -> Core:
        signatures = await open_signatures(config)  # first: a missing gpg stops the start before anything opens
        try:
            log_ = await open_log(config)
        except BaseException:
            if signatures is not None:
                await asyncio.to_thread(signatures.close)
            raise
        state: StateStore | None = None
        try:
            state = await StateStore.open(config.state_path)
            projections = await ProjectionRunner.open(config.projections_path, all_projections())
        except BaseException:
            if state is not None:
                await state.close()  # else its thread keeps the process alive (seen: a hang)
            await log_.close()  # and any server its backend owns
            if signatures is not None:
                await asyncio.to_thread(signatures.close)
            raise
        ingest = Ingest(
            log_, max_bytes=config.ingest.max_bytes, threads=config.ingest.threads, authority=config.authority_policy(),
            signatures=signatures,
        )
        bursts = BurstIdentifier.of(log_, state, config.bursts)
        await bursts.start()
        return cls(config, log_, state, projections, ingest, bursts)

    async def catch_up(self, progress: Callable[[int], None] | None = None) -> None:
        """Bring handlers and projections level with the log (used when no service runs)."""
        await self.bursts.catch_up()
        await self.projections.catch_up(self.log, progress=progress)

    async def close(self) -> None:
        await self.ingest.close()
        await self.projections.close()
        await self.state.close()
        await self.log.close()


class Supervised:
    """A component under the supervisor: restarted with backoff when it fails; its health is
    the supervisor's view (running? waiting out a failure?) merged with the component's own."""

    def __init__(self, component: Component):
        self.component = component
        self.restarts = 0
        self.task: asyncio.Task[None] | None = None
        #: The last failure, while the component waits to be restarted (None once it runs again).
        self.failure: str | None = None
        self.failed_at: str | None = None
        #: The last failure ever, kept once the component runs again (for ``/healthz``).
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        #: The wait before the pending (or the last) restart.
        self.restart_delay: float | None = None

    @property
    def name(self) -> str:
        return self.component.name

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` says about it: down while stopped or waiting out a failure; the
        component's own ``up`` can only turn it down, never up."""
        running = self.task is not None and not self.task.done()
        state: dict[str, Any] = {
            "up": running and self.failure is None,
            "restarts": self.restarts,
            "failure": self.failure,
            "failed_at": self.failed_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "restart_delay": self.restart_delay,
            "last_activity": None,
        }
        own = dict(self.component.health())
        state["up"] = state["up"] and bool(own.pop("up", True))
        state.update(own)
        return state

    def metrics(self) -> MetricsResult:
        return self.component.metrics()


class Service:
    """``burstbus run``: the core plus every registered package's components, until told to stop.

    It knows no transport: :func:`build_service` asks each registered package
    (:func:`burstbus.component.installed_packages`) for its components."""

    def __init__(self, core: Core):
        self.core = core
        self.components: list[Supervised] = []
        self._stopping = asyncio.Event()
        self.first_restart_delay = FIRST_RESTART_DELAY
        self.max_restart_delay = MAX_RESTART_DELAY
        self.healthy_after = HEALTHY_AFTER
        #: A component that could not start at all (:class:`StartupError` on its first run):
        #: the service stops, and :func:`run_service` raises it for the command to report.
        self.fatal: StartupError | None = None
        #: Called after the components stopped, before the core closes (e.g. reader pools).
        self.closers: list[Callable[[], Awaitable[None]]] = []
        #: What components are built from (None for a bare supervisor in tests): its
        #: ``running`` is :attr:`components` itself and its ``closers`` are :attr:`closers`.
        self.host: Host | None = None
        if core is not None:
            self.host = Host(core.config, core.log, core.state, core.ingest, core.projections,
                             running=self.components, closers=self.closers)

    async def close(self) -> None:
        """Run the components' closers (after they stopped, before the core closes)."""
        for close in self.closers:
            try:
                await close()
            except Exception:
                log.exception("closing %r failed", close)

    def add(self, name: str, factory: Callable[[], Awaitable[None]],
            probe: Callable[[], Mapping[str, Any]] | None = None) -> None:
        """Supervise a plain coroutine factory (the core's own followers, the demo's feeder)."""
        self.add_component(Task(name, factory, health=probe))

    def add_component(self, component: Component) -> None:
        self.components.append(Supervised(component))

    def part(self, kind: type[T]) -> T | None:
        """The object of this type a component runs (its ``owner``), for tests and tools."""
        for supervised in self.components:
            if isinstance(supervised.component, Task) and isinstance(supervised.component.owner, kind):
                return supervised.component.owner
        return None

    async def _supervise(self, component: Supervised) -> None:
        """Run the component; when it fails, restart it after a back-off that doubles while
        it keeps failing and starts over once it has run :attr:`healthy_after` seconds."""
        loop = asyncio.get_running_loop()
        delay = self.first_restart_delay
        while not self._stopping.is_set():
            started = loop.time()
            try:
                awaitable = component.component.run()
                component.failure = None
                await awaitable
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ran = loop.time() - started
                if isinstance(exc, StartupError) and component.restarts == 0 and ran < self.healthy_after:
                    self._cannot_start(component, exc)
                    return
                if ran >= self.healthy_after:
                    delay = self.first_restart_delay  # it ran well: this is a new outage
                await self._wait_restart(component, exc, delay)
                delay = min(delay * 2, self.max_restart_delay)

    def _cannot_start(self, component: Supervised, exc: StartupError) -> None:
        """It never ran: its configuration cannot work here (a port in use …). Restarting
        would print the same traceback every few seconds for ever; the service stops instead."""
        log.debug("%s cannot start: %s", component.name, exc)  # run_service raises it: the command says it
        component.failure = component.last_error = f"{type(exc).__name__}: {exc}"
        component.failed_at = component.last_error_at = utc_now()
        if self.fatal is None:
            self.fatal = exc
        self._stopping.set()

    async def _wait_restart(self, component: Supervised, exc: Exception, delay: float) -> None:
        component.failure = component.last_error = f"{type(exc).__name__}: {exc}"
        component.failed_at = component.last_error_at = utc_now()
        component.restarts += 1
        component.restart_delay = delay
        log.exception("%s failed; restarting in %.1fs", component.name, delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):  # not wait_for: see store/sqlite.py subscribe
                await self._stopping.wait()

    def start(self) -> None:
        for component in self.components:
            component.task = asyncio.create_task(self._supervise(component), name=f"burstbus-{component.name}")

    def stop(self) -> None:
        self._stopping.set()

    async def wait(self) -> None:
        await self._stopping.wait()
        tasks = {c.task: c.name for c in self.components if c.task}
        for task in tasks:
            task.cancel()
        pending = set(tasks)
        waited = 0.0
        while pending:
            if waited >= STOP_BOUND:
                log.error("%s did not stop within %.0fs; stopping without it", ", ".join(sorted(tasks[t] for t in pending)), waited)
                return
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
            waited += RECANCEL_AFTER
            for task in pending:
                # Python 3.11's asyncio.wait_for (inside client libraries) swallows a cancel
                # that lands as the awaited result arrives; the component then runs on. Ask again.
                task.cancel()
                if waited % STOP_REPORT_AFTER < RECANCEL_AFTER:
                    where = io.StringIO()
                    task.print_stack(file=where)
                    log.warning("%s has not stopped after %.0fs:\n%s", tasks[task], waited, where.getvalue())
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                task.result()  # the supervisor only ends by returning or by its cancellation


def build_service(core: Core, packages: Sequence[ComponentPackage] | None = None) -> Service:
    """The core's followers (burst identifier, projections) plus every registered package's
    components, each package built in its order with the shared host."""
    service = Service(core)
    service.add("bursts", core.bursts.follow, probe=core.bursts.health)
    service.add("projections", lambda: core.projections.follow(core.log), probe=core.projections.health)
    assert service.host is not None
    for package in installed_packages() if packages is None else packages:
        for component in package.build(service.host):
            service.add_component(component)
    return service


async def run_service(
    config: Config,
    ready: Callable[[Service], None] | None = None,
    setup: Callable[[Service], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM; then stop components, finish pending appends, close the log.

    ``setup`` may add components before they start (``burstbus demo`` adds its feeder);
    ``ready`` is told once they are running.
    """
    with data_dir_lock(config.data_dir):
        core = await Core.open(config)
        try:
            await core.ingest.warm_up()
            service = build_service(core)
            if setup:
                setup(service)
        except BaseException:
            await core.close()  # else its threads keep the process alive after the error
            raise
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, service.stop)
        try:
            service.start()
            head = await core.log.head()
            log.info("burstbus running on %s (log head seq %d)", config.data_dir, head.seq)
            if ready:
                ready(service)
            await service.wait()
            if service.fatal is not None:
                raise service.fatal
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await service.close()
            await core.close()
            log.info("burstbus stopped")
