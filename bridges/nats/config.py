"""The ``[nats]`` configuration section and how it becomes a nats-py connection.

The dataclass follows ``burstbus.config``'s conventions (frozen, ``metadata`` for choices and
minimums, secrets as ``env:NAME`` / ``file:/path``) so that the lead can add it to ``Config``
as ``nats: NatsSection = NatsSection()``; :func:`check_nats` is its cross-field check.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burstbus.catalogue import RESERVED_FAMILIES
from burstbus.config import ConfigError, resolve_secret

# burstbus.config imports this module (the ``[nats]`` section), so it is imported here only
# inside functions: a top-level import would be circular.

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_SUBJECT_TOKEN = re.compile(r"^([A-Za-z0-9_-]+|\*|>)$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
#: Event families burstbus itself defines: a mapping may not forge them (a NATS message
#: claiming to be ``voevent.accepted`` or ``trigger.approved`` would bypass their checks).
RESERVED_TYPE_PREFIXES: tuple[str, ...] = RESERVED_FAMILIES


@dataclass(frozen=True)
class SubjectMapping:
    """An operator's extra input: JSON objects on ``subject`` become events of ``type``.

    ``[[nats.mappings]] subject = "svom.vhf.status" type = "vhf.status" stream_field = "burst_id"``
    """

    #: A NATS subject; ``*`` and ``>`` wildcards allowed. Not under ``[nats] prefix``.
    subject: str
    #: The event type (dotted, lower case, e.g. ``vhf.status``); burstbus's own families are refused.
    type: str
    #: A top-level field whose value (string or integer) becomes the event's stream (e.g.
    #: the burst id); empty: no stream.
    stream_field: str = ""


@dataclass(frozen=True)
class NatsSection:
    """NATS: the bridge in and out of the log, and (empty ``url``) an embedded nats-server."""

    #: Connect to NATS (or start the embedded server) at all.
    enabled: bool = True
    #: Empty: start the embedded nats-server. Otherwise one URL or several seed URLs separated
    #: by commas (``nats://a:4222,nats://b:4222``; ``tls://`` for TLS).
    url: str = ""
    #: Port of the embedded server (always bound to 127.0.0.1); 0 picks a free one.
    embedded_port: int = field(default=4222, metadata={"minimum": 0, "maximum": 65535})
    #: This node's name in the ``Burstbus-Origin`` header. Empty: host name + data directory hash.
    node_id: str = ""
    #: First token of every subject: ``<prefix>.events.<type>``, ``<prefix>.in.voevent`` …
    prefix: str = "burstbus"
    #: Publish the log out (``<prefix>.events.*``, ``<prefix>.voevent.*``).
    outbound: bool = True
    #: Take ``<prefix>.in.voevent`` and ``<prefix>.in.process`` into the log.
    inbound: bool = True
    #: Queue group for the inbound subscriptions (empty: none). Nodes that share one log
    #: should share a queue group so each request is handled once.
    queue_group: str = ""
    #: Publish out into this JetStream stream and checkpoint on its publish acks (created if
    #: missing, capturing the outbound subjects). Empty: core NATS, checkpoint after a flush.
    stream: str = ""
    stream_replicas: int = field(default=1, metadata={"minimum": 1})
    #: The stream's ``Nats-Msg-Id`` dedupe window (seconds); covers re-sends after an outage.
    duplicate_window: float = field(default=120.0, metadata={"minimum": 1.0})
    #: Log records per outbound batch (one flush / one wait for acks per batch).
    batch_size: int = field(default=500, metadata={"minimum": 1})
    #: Seconds to wait for a flush or the publish acks of a batch before retrying it.
    ack_timeout: float = field(default=10.0, metadata={"minimum": 0.1})
    #: Seconds between reconnection attempts (nats-py ``reconnect_time_wait``); retries forever.
    reconnect_wait: float = field(default=2.0, metadata={"minimum": 0.01})
    connect_timeout: float = field(default=5.0, metadata={"minimum": 0.1})
    #: Credentials as nats-py takes them; secrets may be ``env:NAME`` or ``file:/path``.
    user: str = ""
    password: str = ""
    token: str = ""
    #: A ``.creds`` file (JWT + NKey seed) or an NKey seed file.
    credentials: Path | None = None
    nkeys_seed: Path | None = None
    #: TLS: CA bundle to trust, client certificate and key (mutual TLS), server name override.
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_hostname: str = ""
    tls_handshake_first: bool = False
    #: Largest inbound message taken (bytes); a VOEvent larger than ``ingest.max_bytes`` is
    #: refused by the ingest anyway, with its own reason.
    max_inbound_bytes: int = field(default=1_048_576, metadata={"minimum": 1024})
    #: Extra inputs: subject → event type (``[[nats.mappings]]``), request/reply like the others.
    mappings: tuple[SubjectMapping, ...] = ()

    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]

    @property
    def embedded(self) -> bool:
        return not self.servers()


def resolve_node_id(section: NatsSection, data_dir: Path) -> str:
    """The configured node id, else one stable per host and data directory."""
    if section.node_id:
        return section.node_id
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


def check_nats(section: NatsSection) -> None:
    """Cross-field checks, raising :class:`ConfigError` with the key."""
    if not _TOKEN.match(section.prefix):
        raise ConfigError("nats.prefix", f"must be one subject token (letters, digits, _ -), not {section.prefix!r}")
    if section.stream and not _TOKEN.match(section.stream):
        raise ConfigError("nats.stream", f"must be a stream name (letters, digits, _ -), not {section.stream!r}")
    for i, url in enumerate(section.servers()):
        if not re.match(r"^(nats|tls|ws|wss)://[^\s]+$", url):
            raise ConfigError("nats.url", f"server {i + 1} is not a nats://, tls://, ws:// or wss:// URL: {url!r}")
    if (section.tls_cert is None) != (section.tls_key is None):
        raise ConfigError("nats.tls_cert", "tls_cert and tls_key go together (mutual TLS)")
    if section.credentials is not None and section.nkeys_seed is not None:
        raise ConfigError("nats.credentials", "give either credentials or nkeys_seed, not both")
    seen: set[str] = set()
    for i, mapping in enumerate(section.mappings):
        check_mapping(mapping, f"nats.mappings[{i}]", section.prefix)
        if mapping.subject in seen:
            raise ConfigError(f"nats.mappings[{i}].subject", f"{mapping.subject!r} is mapped twice")
        seen.add(mapping.subject)
    for name in ("credentials", "nkeys_seed", "tls_ca", "tls_cert", "tls_key"):
        path = getattr(section, name)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"nats.{name}", f"file not found: {path}")


def check_mapping(mapping: SubjectMapping, key: str, prefix: str) -> None:
    tokens = mapping.subject.split(".")
    if not all(_SUBJECT_TOKEN.match(t) for t in tokens) or ">" in tokens[:-1]:
        raise ConfigError(f"{key}.subject", f"not a NATS subject (tokens of letters, digits, _ -, or * and a final >): {mapping.subject!r}")
    if tokens[0] in (prefix, "*", ">") or tokens[0].startswith("$") or tokens[0] == "_INBOX":
        raise ConfigError(f"{key}.subject", f"must not cover burstbus's own subjects ({prefix}.>) or system subjects: {mapping.subject!r}")
    if not _EVENT_TYPE.match(mapping.type):
        raise ConfigError(f"{key}.type", f"must be a dotted lower-case event type like vhf.status, not {mapping.type!r}")
    if mapping.type.startswith(RESERVED_TYPE_PREFIXES):
        raise ConfigError(f"{key}.type", f"{mapping.type!r} is in a family burstbus defines itself ({', '.join(p + '*' for p in RESERVED_TYPE_PREFIXES)})")
    if mapping.stream_field and not re.match(r"^[A-Za-z0-9_.-]+$", mapping.stream_field):
        raise ConfigError(f"{key}.stream_field", f"must be a top-level field name, not {mapping.stream_field!r}")


def check_log_jetstream(section: Any) -> None:
    """``[log]``'s JetStream keys (the section is defined in burstbus.config)."""
    if not _TOKEN.match(section.stream):
        raise ConfigError("log.stream", f"must be a stream name (letters, digits, _ -), not {section.stream!r}")
    for i, url in enumerate(u.strip() for u in section.jetstream_url.split(",") if u.strip()):
        if not re.match(r"^(nats|tls|ws|wss)://[^\s]+$", url):
            raise ConfigError("log.jetstream_url", f"server {i + 1} is not a nats://, tls://, ws:// or wss:// URL: {url!r}")


def tls_context(section: NatsSection) -> ssl.SSLContext | None:
    """An SSL context when any TLS option is set (``tls://`` URLs alone use nats-py's default)."""
    if section.tls_ca is None and section.tls_cert is None:
        return None
    context = ssl.create_default_context(cafile=str(section.tls_ca) if section.tls_ca else None)
    if section.tls_cert is not None and section.tls_key is not None:
        context.load_cert_chain(str(section.tls_cert), str(section.tls_key))
    return context


async def _log_error(exc: Exception) -> None:
    """nats-py's errors as one line each (its default logs a traceback per reconnect attempt)."""
    log.warning("NATS: %s: %s", type(exc).__name__, exc)


def connect_options(section: NatsSection, *, servers: list[str], name: str) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect``: reconnect forever, credentials and TLS."""
    options: dict[str, Any] = {
        "error_cb": _log_error,
        "servers": servers,
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": section.reconnect_wait,
        "connect_timeout": section.connect_timeout,
    }
    if section.user:
        options["user"] = resolve_secret(section.user, "nats.user")
    if section.password:
        options["password"] = resolve_secret(section.password, "nats.password")
    if section.token:
        options["token"] = resolve_secret(section.token, "nats.token")
    if section.credentials is not None:
        options["user_credentials"] = str(section.credentials)
    if section.nkeys_seed is not None:
        options["nkeys_seed"] = str(section.nkeys_seed)
    context = tls_context(section)
    if context is not None:
        options["tls"] = context
    if section.tls_hostname:
        options["tls_hostname"] = section.tls_hostname
    if section.tls_handshake_first:
        options["tls_handshake_first"] = True
    return options
