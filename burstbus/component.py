"""What a part of the running service is, and what it is given: the component interface.

Why: each capability (a transport, a handler, the bot, the HTTP side) is a *component* the
service only gathers, as Comet's ``makeService`` gathers what implements its small interfaces.
The core never names a transport; ``/healthz``, ``/metrics`` and the bot's ``status`` iterate
the components; a component reaches another only through a **port** that one offers and the
other asks for by name, at call time (so the order they are built in does not matter, and a
missing one — NATS off, no XMPP — is an explicit ``None`` the caller handles).

* :class:`Component` — ``name``, ``run()`` (supervised: restarted with backoff when it
  fails), ``health()`` (its own state, merged into the supervisor's), ``metrics()``
  (Prometheus families, sync or async).
* :class:`Host` — what every component is built from: configuration, the log, handler state,
  the ingest, the projections, and the :class:`Ports`.
* :class:`PortKey` — a typed name for something one component offers another
  (:data:`PUBLISH`: publish raw bytes on NATS; ``burstbus.chat.CHAT``: send chat messages).
* :class:`ComponentPackage` — what a package registers (entry point group
  ``burstbus.components``): config sections, checks, authority claims, a ``build`` hook.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable
from urllib.parse import urlsplit

from burstbus.config import Claims, SectionSpec, registered_packages
from burstbus.ingest import Ingest
from burstbus.metrics import Family
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.projections.runner import ProjectionRunner

T = TypeVar("T")

#: A component's metrics: families now, or an awaitable of them (it may read the log).
MetricsResult = Iterable[Family] | Awaitable[Iterable[Family]]


@runtime_checkable
class Component(Protocol):
    """A long-running part of ``burstbus run``."""

    @property
    def name(self) -> str:
        """Unique within a service: the key in ``/healthz`` and the supervisor's log lines."""
        ...

    async def run(self) -> None:
        """Run until cancelled; raising makes the supervisor restart it (with backoff)."""
        ...

    def health(self) -> Mapping[str, Any]:
        """Its own state: ``up`` (can only turn it down), ``last_activity``, position, counters."""
        ...

    def metrics(self) -> MetricsResult:
        """Its Prometheus families (``burstbus_<name>_…``); empty if it has none."""
        ...


class PortKey(Generic[T]):
    """A typed name for a port (as aiohttp's ``AppKey``): ``ports.get(PUBLISH)`` is a ``Publish``."""

    def __init__(self, name: str, what: str):
        self.name = name
        self.what = what

    def __repr__(self) -> str:
        return f"PortKey({self.name!r})"


class Ports:
    """What components offer one another, by :class:`PortKey`; one offer per key."""

    def __init__(self) -> None:
        self._offered: dict[str, tuple[str, Any]] = {}

    def offer(self, key: PortKey[T], value: T, *, by: str) -> None:
        if key.name in self._offered:
            raise ValueError(f"port {key.name} is already offered by {self._offered[key.name][0]}")
        self._offered[key.name] = (by, value)

    def get(self, key: PortKey[T]) -> T | None:
        """The offered value, or None when no component offers it (that transport is off)."""
        found = self._offered.get(key.name)
        return None if found is None else cast(T, found[1])

    def offered(self) -> dict[str, str]:
        """Port name → the component offering it (for ``status`` and the docs)."""
        return {name: by for name, (by, _) in self._offered.items()}


#: ``publish(subject, payload, headers)``: raw bytes on NATS, confirmed by the server.
Publish = Callable[[str, bytes, dict[str, str]], Awaitable[object]]
PUBLISH: PortKey[Publish] = PortKey("nats.publish", "publish raw bytes on a NATS subject")


class RequestNotDelivered(Exception):
    """A request nobody took (no responder on its subject): it was not handled."""


class RequestNotSent(Exception):
    """The transport is not connected (yet, or for now): nothing was sent, and nothing is known
    about the request itself. Not an answer: the sender tries again once it is connected (the
    orchestrator's first round at a start can come before NATS connects; counting that as a
    refusal cost an attempt and its backoff)."""


class RequestUnanswered(Exception):
    """A request with no reply in time: it may have been handled."""


#: ``request(subject, payload, headers, timeout)``: a NATS request; the reply's bytes. Raises
#: :class:`RequestNotDelivered` or :class:`RequestUnanswered` (the orchestrator's dispatch
#: records which: a worker may or may not have the job), or :class:`RequestNotSent` (not
#: connected: nothing to record, send it again).
Request = Callable[[str, bytes, dict[str, str], float], Awaitable[bytes]]
REQUEST: PortKey[Request] = PortKey("nats.request", "send a NATS request and return the reply")
#: Where people reach the web pages (``[http] public_url``, else its own address): links in messages.
LINK_BASE: PortKey[str] = PortKey("web.link_base", "the web pages' address, for links in messages")


def link_base(ports: Ports, *, who: str) -> str:
    """The :data:`LINK_BASE` a message sender puts in its links, with a warning at start when
    it only works on this machine (``public_url`` unset: ``http://127.0.0.1:8080`` in a
    page to a phone is a dead link at 3 a.m.)."""
    base = ports.get(LINK_BASE) or ""
    host = urlsplit(base).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1", "0.0.0.0", "") or host.startswith("127."):
        logging.getLogger(__name__).warning(
            "%s: links in messages point to %s, which only this machine can open: set [http] public_url "
            "to the address people use (e.g. https://fsc.example/burstbus)", who, base or "(no web pages)")
    return base


class StartupError(Exception):
    """A component cannot start here with this configuration: a port in use or not ours to
    bind, an address this machine does not have, a server that refuses us.

    At the service's start it ends ``burstbus run`` with this one line (exit 1), naming the
    setting, instead of a supervised restart loop printing a traceback every few seconds;
    after a good start the same error is an ordinary failure, restarted with back-off (the
    port may be free again)."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


#: Why a bind failed, in the words an operator acts on.
_BIND_PROBLEMS = {
    errno.EADDRINUSE: "{address} is already in use (another burstbus, or another program): choose another port",
    errno.EACCES: "not allowed to listen on {address} (ports below 1024 need privileges)",
    errno.EADDRNOTAVAIL: "{host} is not an address of this machine",
}


def bind_failure(setting: str, host: str, port: int, exc: OSError) -> StartupError:
    """The :class:`StartupError` for a failed listen on ``host:port`` (``setting`` names the key)."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    template = _BIND_PROBLEMS.get(exc.errno or 0, "cannot listen on {address}: {reason}")
    return StartupError(setting, template.format(address=address, host=host, reason=exc.strerror or exc))


class Reporting(Protocol):
    """A component as the service runs it: what ``/healthz``, ``/metrics`` and ``status`` read."""

    @property
    def name(self) -> str: ...

    def health(self) -> Mapping[str, Any]: ...

    def metrics(self) -> MetricsResult: ...


@dataclass
class Host:
    """What components are built from. ``running`` is the service's live list of supervised
    components, so one that reports on the others (HTTP ``/healthz``, the bot's ``status``)
    reads it when asked, whatever was built after it."""

    config: Any  # burstbus.config.Config (the config module imports this one)
    log: EventLog
    state: StateStore
    ingest: Ingest
    projections: ProjectionRunner
    ports: Ports = field(default_factory=Ports)
    running: Sequence[Reporting] = ()
    #: Called after the components stopped, before the core closes (reader pools, …).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


class Task:
    """A component from plain callables: the common case (a node's ``run`` and its probes).

    ``owner`` is the object the task runs (a node), for :meth:`Service.part` in tests and tools."""

    def __init__(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        health: Callable[[], Mapping[str, Any]] | None = None,
        metrics: Callable[[], MetricsResult] | None = None,
        owner: object | None = None,
    ):
        self._name = name
        self._run = run
        self._health = health
        self._metrics = metrics
        self.owner = owner

    @property
    def name(self) -> str:
        return self._name

    async def run(self) -> None:
        await self._run()

    def health(self) -> Mapping[str, Any]:
        return self._health() if self._health is not None else {}

    def metrics(self) -> MetricsResult:
        return self._metrics() if self._metrics is not None else ()


def _no_check(config: Any) -> None:
    return None


def _no_claims(config: Any) -> Claims:
    return Claims()


def _no_components(host: Host) -> list[Component]:
    return []


@dataclass(frozen=True)
class ComponentPackage:
    """What one transport/handler package brings: its config sections and checks, the IVORNs it
    speaks for, and its components. Registered as an entry point in the ``burstbus.components``
    group (pyproject.toml): adding a transport is a new package plus one line there.

    ``build`` is called in ``order`` (lowest first) with the host; it may offer ports and look
    up ports offered by packages built before it (the bot exists only where a chat transport
    offered :data:`~burstbus.chat.CHAT`); ports used at call time need no order."""

    name: str
    order: int = 50
    sections: tuple[SectionSpec, ...] = ()
    check: Callable[[Any], None] = _no_check
    claims: Callable[[Any], Claims] = _no_claims
    build: Callable[[Host], list[Component]] = _no_components
    #: Log backends it provides: ``[log] backend`` name → ``open(config)`` (beside SQLite's).
    log_backends: Mapping[str, Callable[[Any], Awaitable[EventLog]]] = field(default_factory=dict)


def installed_packages() -> list[ComponentPackage]:
    """Every registered package (``burstbus.components`` entry points), in build order."""
    found = registered_packages()
    for package in found:
        if not isinstance(package, ComponentPackage):
            raise TypeError(f"registered package {package!r} is not a ComponentPackage")
    return sorted(found, key=lambda p: (p.order, p.name))
