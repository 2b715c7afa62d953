"""The service runner: opens the log, starts every component on one asyncio loop, stops cleanly.

Components are long-running coroutines (projection runner, burst identifier, and — as the
transports land — VTP, NATS, XMPP, Slack, HTTP). Each runs under a supervisor that logs a
failure and restarts it with backoff, so one broken consumer never takes the log down.

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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from burstbus.bots.bot import BurstBot, add_bot
from burstbus.bridges.nats.node import NatsNode, add_nats
from burstbus.bridges.slack.node import add_slack
from burstbus.bridges.slack.outbox import SlackOutbox
from burstbus.bridges.xmpp.node import XmppNode, add_xmpp
from burstbus.broker.node import VTPNode
from burstbus.config import Config
from burstbus.events import utc_now
from burstbus.handlers.bursts import BurstIdentifier
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.projections.registry import all_projections
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.sqlite import SQLiteEventLog

log = logging.getLogger(__name__)

LOCK_FILE = "burstbus.lock"
#: Stopping: a component still running this many seconds after its cancel is cancelled again …
RECANCEL_AFTER = 2.0
#: … and reported, with where it waits, every this many seconds.
STOP_REPORT_AFTER = 10.0


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

    JetStream: the stream named in ``[log]``; with no URL configured the data directory's
    embedded nats-server is started first and stopped when the log closes (the log owns it,
    and the NATS bridge shares it)."""
    if config.log.backend == "jetstream":
        from burstbus.bridges.nats.log_backend import open_jetstream_log

        return await open_jetstream_log(config)
    return await SQLiteEventLog.open(config.log_path, synchronous=config.log.synchronous, poll_interval=config.log.poll_interval)


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
        log_ = await open_log(config)
        try:
            state = await StateStore.open(config.state_path)
            projections = await ProjectionRunner.open(config.projections_path, all_projections())
        except BaseException:
            await log_.close()  # and the embedded nats-server it may own
            raise
        ingest = Ingest(
            log_, max_bytes=config.ingest.max_bytes, threads=config.ingest.threads, authority=config.authority_policy()
        )
        bursts = BurstIdentifier(log_, state, config.bursts.rules, config.bursts.roles)
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


@dataclass
class Supervised:
    name: str
    factory: Callable[[], Awaitable[None]]
    restarts: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    #: The last failure, while the component waits to be restarted (None once it runs again).
    failure: str | None = None
    failed_at: str | None = None
    #: The component's own state (connection, position, counters), merged into its health;
    #: its ``up`` can only turn the component down, never up.
    probe: Callable[[], Mapping[str, Any]] | None = None

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` says about it: down while stopped or waiting out a failure."""
        running = self.task is not None and not self.task.done()
        state: dict[str, Any] = {
            "up": running and self.failure is None,
            "restarts": self.restarts,
            "failure": self.failure,
            "failed_at": self.failed_at,
            "last_activity": None,
        }
        if self.probe is not None:
            own = dict(self.probe())
            state["up"] = state["up"] and bool(own.pop("up", True))
            state.update(own)
        return state


class Service:
    """``burstbus run``: the core plus every configured component, until told to stop."""

    def __init__(self, core: Core):
        self.core = core
        self.components: list[Supervised] = []
        self._stopping = asyncio.Event()
        self.vtp: VTPNode | None = None
        self.nats: NatsNode | None = None
        self.bot: BurstBot | None = None
        self.xmpp: XmppNode | None = None
        self.slack: SlackOutbox | None = None
        #: Called after the components stopped, before the core closes (e.g. reader pools).
        self.closers: list[Callable[[], Awaitable[None]]] = []

    def add(self, name: str, factory: Callable[[], Awaitable[None]],
            probe: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.components.append(Supervised(name, factory, probe=probe))

    async def _supervise(self, component: Supervised) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                awaitable = component.factory()
                component.failure = None
                await awaitable
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                component.failure = f"{type(exc).__name__}: {exc}"
                component.failed_at = utc_now()
                component.restarts += 1
                log.exception("%s failed; restarting in %.1fs", component.name, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):  # not wait_for: see store/sqlite.py subscribe
                        await self._stopping.wait()
                delay = min(delay * 2, 30.0)

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
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
            waited += RECANCEL_AFTER
            for task in pending:
                # Python 3.11's asyncio.wait_for (inside nats-py, slixmpp…) swallows a cancel
                # that lands as the awaited result arrives; the component then runs on. Ask again.
                task.cancel()
                if waited % STOP_REPORT_AFTER < RECANCEL_AFTER:
                    where = io.StringIO()
                    task.print_stack(file=where)
                    log.warning("%s has not stopped after %.0fs:\n%s", tasks[task], waited, where.getvalue())
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                task.result()  # the supervisor only ends by returning or by its cancellation


def build_service(core: Core) -> Service:
    """Wire the components that exist so far."""
    service = Service(core)
    service.add("bursts", core.bursts.follow)
    service.add("projections", lambda: core.projections.follow(core.log))
    if core.config.vtp.enabled:
        service.vtp = VTPNode(core.log, core.ingest, core.config.vtp)
        for name, factory in service.vtp.components():
            service.add(name, factory)
    service.nats = add_nats(service, core)
    if core.config.xmpp.enabled:
        service.bot = add_bot(service, core)
        service.closers.append(service.bot.close)
        service.xmpp = add_xmpp(service, core, service.bot)
    service.slack = add_slack(service, core)
    if core.config.http.enabled:
        add_http(service, core)  # last: its /healthz lists the components added before it
    return service


def add_http(service: Service, core: Core) -> None:
    """Serve the HTTP API; ``/healthz`` reports every supervised component."""
    from burstbus.bridges.http import make_app, serve
    from burstbus.config import resolve_secret

    section = core.config.http
    token = resolve_secret(section.token, "http.token") if section.token else None

    health: dict[str, Any] = {c.name: c.health for c in service.components}
    metrics: dict[str, Any] = {}
    if service.vtp is not None:
        from burstbus.bridges.http.providers import vtp_health, vtp_metrics

        metrics["vtp"] = vtp_metrics(service.vtp, core.log)
        for part in ("vtp-receiver", "vtp-broadcaster", "vtp-upstreams"):
            if part in health:
                health[part] = vtp_health(service.vtp, part, health[part])
    if service.nats is not None:
        from burstbus.bridges.http.providers import nats_health, nats_metrics

        metrics["nats"] = nats_metrics(service.nats, core.log)
        if "nats" in health:
            health["nats"] = nats_health(service.nats, health["nats"])
    if service.xmpp is not None:
        from burstbus.bridges.http.providers import xmpp_metrics

        metrics["xmpp"] = xmpp_metrics(service.xmpp, core.log)
    if service.slack is not None:
        from burstbus.bridges.http.providers import slack_metrics

        metrics["slack"] = slack_metrics(service.slack, core.log)

    def app() -> Any:
        return make_app(core.log, core.config.projections_path, ingest=core.ingest, token=token,
                        base_path=section.base_path, components=health, metrics=metrics,
                        projection_runner=core.projections,
                        read_token=resolve_secret(section.read_token, "http.read_token") if section.read_token else None,
                        public_read=section.public_read, public_url=section.public_url)

    def ready(addresses: list[tuple[str, int]]) -> None:
        for host, port in addresses:
            log.info("HTTP API on http://%s:%d%s/", host, port, section.base_path)

    service.add("http", lambda: serve(app, section.host, section.port, ready=ready))


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
        await core.ingest.warm_up()
        service = build_service(core)
        if setup:
            setup(service)
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
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            for close in service.closers:
                try:
                    await close()
                except Exception:
                    log.exception("closing %r failed", close)
            await core.close()
            log.info("burstbus stopped")
