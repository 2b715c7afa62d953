"""The HTTP side as a component: ``[http]``, the ``web.link_base`` port, and the served app.

``/healthz`` and ``/metrics`` read the service's running components when asked (live views
of the host's list), so this package names no other component and may be built first: it is,
because it offers the address that other components put in their links."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

from burstbus.acl import AclSection
from burstbus.bridges.http.app import make_app, serve
from burstbus.bridges.http.config import HttpSection, check_http
from burstbus.bridges.http.server import Limits
from burstbus.chat import CHAT
from burstbus.component import (
    LINK_BASE,
    Component,
    ComponentPackage,
    Host,
    Reporting,
    SectionSpec,
    Task,
)
from burstbus.config import resolve_secret
from burstbus.handlers.notices.drafts import NOTICE_DRAFTS
from burstbus.handlers.notices.intake import NOTICE_INTAKE
from burstbus.handlers.orchestrator.component import ORCHESTRATOR
from burstbus.handlers.orchestrator.config import PipelinesSection

log = logging.getLogger(__name__)


class LiveRegistry(MutableMapping[str, Any]):
    """Name → what ``pick`` takes of each running component, as of each lookup; the app may add
    entries of its own (its SSE hub's metrics), kept beside the components'."""

    def __init__(self, running: Sequence[Reporting], pick: Callable[[Reporting], Any]):
        self.running = running
        self.pick = pick
        self.own: dict[str, Any] = {}

    def _current(self) -> dict[str, Any]:
        return {**{c.name: self.pick(c) for c in self.running}, **self.own}

    def __getitem__(self, name: str) -> Any:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __setitem__(self, name: str, value: Any) -> None:
        self.own[name] = value

    def __delitem__(self, name: str) -> None:
        del self.own[name]


def _build(host: Host) -> list[Component]:
    section = host.config.section(HttpSection)
    host.ports.offer(LINK_BASE, section.link_base(), by="http")
    if not section.enabled:
        return []
    token = resolve_secret(section.token, "http.token") if section.token else None
    read_token = resolve_secret(section.read_token, "http.read_token") if section.read_token else None
    health = LiveRegistry(host.running, lambda c: c.health)
    metrics = LiveRegistry(host.running, lambda c: c.metrics)

    def app() -> Any:
        return make_app(host.log, host.config.projections_path, ingest=host.ingest, token=token,
                        base_path=section.base_path, components=health, metrics=metrics,
                        projection_runner=host.projections, read_token=read_token,
                        public_read=section.public_read, public_processes=section.public_processes, public_url=section.public_url,
                        notices=lambda: host.ports.get(NOTICE_INTAKE),
                        pipelines=host.config.section(PipelinesSection), orchestrator=lambda: host.ports.get(ORCHESTRATOR),
                        state=host.state, acl=host.config.section(AclSection), sso_header=section.sso_header,
                        sso_proxies=section.sso_proxies, drafts=lambda: host.ports.get(NOTICE_DRAFTS),
                        messenger=lambda: host.ports.get(CHAT))

    def ready(addresses: list[tuple[str, int]]) -> None:
        for address, port in addresses:
            log.info("HTTP API on http://%s:%d%s/", address, port, section.base_path)

    limits = Limits(header_timeout=section.header_timeout, body_timeout=section.body_timeout)
    return [Task("http", lambda: serve(app, section.host, section.port, ready=ready, limits=limits))]


PACKAGE = ComponentPackage(
    name="http", order=0, sections=(SectionSpec("http", HttpSection),),
    check=lambda config: check_http(config.section(HttpSection)), build=_build,
)
