"""``[notices]``: the centre's own notices — under which IVORN stream, by which author, with
which instruments' parameters.

Off by default: a notice speaks for the centre, so an operator turns it on with the centre's
stream (``org.svom/fsc`` at the FSC). When on, the stream's authority is reserved to burstbus's
components (:mod:`burstbus.authority`) and the publisher (``local:notices``) may publish only
under the reserved prefixes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from burstbus.authority import normal_prefix
from burstbus.config import ConfigError

from .instruments import InstrumentFileError, load_instruments

_STREAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)+$")
_KIND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


@dataclass(frozen=True)
class NoticesSection:
    """``[notices]``: the notices the centre issues from requests (NATS, HTTP, the orchestrator)."""

    #: Issue notices (off: no intake on NATS/HTTP, nothing published, the stream not reserved).
    enabled: bool = False
    #: ``ivo://<stream>#<burst id>_<type>``: ``org.svom/fsc`` at the French Science Centre.
    stream: str = "burstbus.local/notices"
    #: ``Who/AuthorIVORN``; empty: ``ivo://<stream>``.
    author_ivorn: str = ""
    #: ``Who/Author/title`` (empty: left out, as every Author field).
    title: str = "burstbus science centre"
    #: ``Who/Author/shortName`` (``FSC``).
    short_name: str = "burstbus"
    #: ``Who/Author/contactName``.
    contact_name: str = ""
    #: ``Who/Author/contactEmail``.
    contact_email: str = ""
    #: Operator instrument files (``<instrument>.toml``) replacing or adding to the built-ins.
    instruments_dir: Path | None = None
    #: Largest notice request accepted (bytes of JSON).
    max_request_bytes: int = field(default=65_536, metadata={"minimum": 256})
    #: Data kinds (``data.available``, the orchestrator's products) that are notice requests:
    #: the product's ``file://`` or ``data:`` location holds the request's JSON.
    data_kinds: tuple[str, ...] = ()

    @property
    def author(self) -> str:
        return self.author_ivorn or f"ivo://{self.stream}"

    @property
    def authority(self) -> str:
        """``ivo://org.svom/`` for ``org.svom/fsc``: what the authority rule reserves."""
        return f"ivo://{self.stream.split('/', 1)[0]}/"


def check_notices(section: NoticesSection, trigger_streams: Iterable[str] = ()) -> None:
    """Refuse what could never make a valid notice; raises ``ConfigError`` naming the key.
    ``trigger_streams``: a notice stream inside one could never be published (only the
    trigger workflow publishes there)."""
    if not _STREAM.match(section.stream):
        raise ConfigError("notices.stream", f"must be authority/path like org.svom/fsc (no ivo://, no #), not {section.stream!r}")
    ours = normal_prefix(f"ivo://{section.stream}/")
    inside = next((s for s in trigger_streams if ours.startswith(normal_prefix(s))), None)
    if inside is not None:
        raise ConfigError("notices.stream", f"{section.stream!r} is inside the trigger stream {inside}: only the trigger workflow publishes there")
    if section.author_ivorn and (not section.author_ivorn.startswith("ivo://") or "#" in section.author_ivorn):
        raise ConfigError("notices.author_ivorn", f"must be ivo://authority/path without '#', not {section.author_ivorn!r}")
    if section.contact_email and not _EMAIL.match(section.contact_email):
        raise ConfigError("notices.contact_email", f"not an e-mail address: {section.contact_email!r}")
    for key in ("title", "short_name", "contact_name"):
        if any(c in getattr(section, key) for c in "\r\n\t"):
            raise ConfigError(f"notices.{key}", "must be one line")
    for i, kind in enumerate(section.data_kinds):
        if not _KIND.match(kind):
            raise ConfigError(f"notices.data_kinds[{i}]", f"must be a data kind (letters, digits, _ . : + -), not {kind!r}")
    try:
        load_instruments(section.instruments_dir)
    except InstrumentFileError as exc:
        raise ConfigError("notices.instruments_dir", str(exc)) from None
