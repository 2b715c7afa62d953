"""The notice publisher as a component: ``[notices]``, the authority it speaks for, the intake
port the transports take requests through, and the publisher following the log."""

from __future__ import annotations

from datetime import UTC, datetime

from burstbus.component import Claims, Component, ComponentPackage, Host, SectionSpec, Task
from burstbus.config import Config

from .config import NoticesSection, check_notices
from .drafts import NOTICE_DRAFTS, NoticeDrafts
from .instruments import load_instruments
from .intake import NOTICE_INTAKE, NoticeIntake
from .products import NoticeProducts
from .publisher import NoticePublisher


def _claims(config: Config) -> Claims:
    section = config.section(NoticesSection)
    return Claims(own=(f"ivo://{section.stream}",)) if section.enabled else Claims()


def _build(host: Host) -> list[Component]:
    section = host.config.section(NoticesSection)
    if not section.enabled:
        return []
    instruments = load_instruments(section.instruments_dir)
    intake = NoticeIntake(host.log, instruments, max_bytes=section.max_request_bytes)
    host.ports.offer(NOTICE_INTAKE, intake, by="notices")
    host.ports.offer(NOTICE_DRAFTS, NoticeDrafts(host.log, section, instruments, clock=lambda: datetime.now(UTC)), by="notices")
    publisher = NoticePublisher(host.log, host.state, host.ingest, section, instruments)
    components: list[Component] = [Task("notices", publisher.run, health=publisher.health, owner=publisher)]
    if section.data_kinds:  # the orchestrator's products that are notice requests
        products = NoticeProducts(host.log, host.state, intake, section.data_kinds)
        components.append(Task("notice-products", products.run, health=products.health, owner=products))
    return components


PACKAGE = ComponentPackage(
    name="notices", order=20, sections=(SectionSpec("notices", NoticesSection),),
    check=lambda config: check_notices(config.section(NoticesSection), config.trigger_streams), claims=_claims,
    build=_build,
)
