"""Configuration: one TOML file, environment overrides, and refusal of anything unknown.

Sources, later ones winning: built-in defaults → the TOML file (``--config``, else
``./burstbus.toml`` if present) → ``BURSTBUS_<SECTION>_<KEY>`` environment variables →
command-line options the CLI maps onto keys (e.g. ``--data-dir``).

A bad key or value stops the start with a :class:`ConfigError` naming ``section.key`` and
what is wrong: a typo in an ACL must never silently fall back to a default.

Each section is a frozen dataclass; a field's ``metadata`` may carry ``choices`` and
``minimum``. Later sections (nats, xmpp, slack, http, acl) are added the same way.
Values of the form ``env:NAME`` or ``file:/path`` in secret fields are read from there.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from burstbus.authority import (
    AuthorityConfigError,
    AuthorityPolicy,
    AuthoritySection,
    check_authority,
)
from burstbus.bots.config import AclSection, TriggersSection, check_bot
from burstbus.bridges.nats.config import NatsSection, check_log_jetstream, check_nats
from burstbus.bridges.slack.config import SlackSection, check_slack
from burstbus.bridges.xmpp.config import XmppSection, check_xmpp

ENV_PREFIX = "BURSTBUS_"
DEFAULT_CONFIG_FILE = Path("burstbus.toml")


class ConfigError(ValueError):
    """A configuration problem, with the dotted key it concerns."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"configuration error at {key}: {problem}")
        self.key = key
        self.problem = problem


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


@dataclass(frozen=True)
class DataSection:
    """Where burstbus keeps its files: ``log.sqlite``, ``projections.sqlite``, state."""

    dir: Path = Path("burstbus-data")


@dataclass(frozen=True)
class LogSection:
    #: ``sqlite`` (DATA_DIR/log.sqlite) or ``jetstream`` (a NATS JetStream stream; each node
    #: keeps its projections and handler state in local SQLite following it).
    backend: str = field(default="sqlite", metadata=_choices("sqlite", "jetstream"))
    #: SQLite. FULL: an acknowledged append survives a power cut. NORMAL: survives a crash only.
    synchronous: str = field(default="FULL", metadata=_choices("FULL", "NORMAL", "EXTRA"))
    #: How soon a reader notices appends made by another process or node (seconds).
    poll_interval: float = field(default=0.5, metadata={"minimum": 0.01})
    #: JetStream: seed URLs of the cluster holding the log (comma-separated). Empty: the
    #: ``[nats] url`` servers, or the embedded nats-server when that is empty too.
    jetstream_url: str = ""
    #: JetStream: the stream's name (created if missing) and its replicas (3 in a cluster).
    stream: str = "BURSTBUS_LOG"
    replicas: int = field(default=1, metadata={"minimum": 1})
    #: JetStream: ``Nats-Msg-Id`` dedupe window (seconds); ids stay unique beyond it anyway.
    duplicate_window: float = field(default=120.0, metadata={"minimum": 1.0})
    #: JetStream: seconds to wait for an append's acks or a read's answer.
    timeout: float = field(default=10.0, metadata={"minimum": 0.1})


@dataclass(frozen=True)
class IngestSection:
    #: Largest VOEvent accepted, in bytes (Comet silently drops frames over 99,999).
    max_bytes: int = field(default=1_048_576, metadata={"minimum": 1024})
    #: Threads that parse and schema-check packets off the event loop.
    threads: int = field(default=2, metadata={"minimum": 1})


@dataclass(frozen=True)
class BurstRule:
    """An operator's rule: the first string the XPath selects, with ``prefix``, is the burst id."""

    name: str
    xpath: str
    prefix: str = ""


@dataclass(frozen=True)
class BurstsSection:
    #: Which VOEvent roles may open or join a burst (test packets never do by default).
    roles: tuple[str, ...] = ("observation",)
    #: Operator rules, tried before the built-in ones.
    rules: tuple[BurstRule, ...] = ()


@dataclass(frozen=True)
class SubscriberFilter:
    """An operator's XPath filter for the VTP subscribers connecting from ``network`` (CIDR).

    A packet goes to such a subscriber only if one of the operator's filters for it selects the
    packet *and* (if the subscriber sent filters of its own) one of its own filters does.
    """

    xpath: str
    network: str = "0.0.0.0/0"


@dataclass(frozen=True)
class UpstreamBroker:
    """A remote VTP broker burstbus subscribes to (like ``comet --remote=host:port``)."""

    host: str
    port: int = field(default=8099, metadata={"minimum": 1})
    #: XPath filters sent to the upstream in the authenticate reply (it applies them).
    filters: tuple[str, ...] = ()


_ANY_ADDRESS = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class VTPSection:
    """VTP (VOEvent Transport Protocol): receive from authors, broadcast, subscribe upstream."""

    enabled: bool = True
    #: Our IVORN in transport messages (ACK/NAK origin, iamalive, authenticate).
    local_ivo: str = "ivo://burstbus.local/broker"
    receive: bool = True
    receive_host: str = "127.0.0.1"
    #: 0 picks a free port (tests); Comet's author port is 8098.
    receive_port: int = field(default=8098, metadata={"minimum": 0})
    #: Largest frame an author may send (bytes); Comet silently drops frames over 99,999.
    max_bytes: int = field(default=1_048_576, metadata={"minimum": 1024})
    #: An author must finish its packet within this many seconds of connecting (Comet: 20).
    receive_timeout: float = field(default=20.0, metadata={"minimum": 0.01})
    #: CIDR networks authors may connect from (Comet's --author-whitelist).
    author_allow: tuple[str, ...] = _ANY_ADDRESS
    broadcast: bool = True
    broadcast_host: str = "127.0.0.1"
    broadcast_port: int = field(default=8099, metadata={"minimum": 0})
    #: CIDR networks subscribers may connect from (Comet's --subscriber-whitelist).
    subscriber_allow: tuple[str, ...] = _ANY_ADDRESS
    #: Seconds between iamalive messages; a subscriber that missed the previous one is dropped.
    iamalive_interval: float = field(default=60.0, metadata={"minimum": 0.01})
    #: A subscriber with this many unacknowledged events at an iamalive is dropped (Comet: 10).
    max_outstanding_acks: int = field(default=10, metadata={"minimum": 1})
    #: Seconds to wait for a new subscriber's authenticate reply (its filters) before sending.
    authenticate_wait: float = field(default=5.0, metadata={"minimum": 0.0})
    subscriber_filters: tuple[SubscriberFilter, ...] = ()
    upstreams: tuple[UpstreamBroker, ...] = ()
    #: Longest wait between reconnection attempts to an upstream broker (seconds).
    upstream_max_delay: float = field(default=60.0, metadata={"minimum": 0.1})
    #: Drop an upstream connection that sent nothing (not even iamalive) for this long (Comet: 120).
    upstream_idle_timeout: float = field(default=120.0, metadata={"minimum": 0.1})
    #: Seconds between periodic test events sent to subscribers (Comet's default: 3600); 0: none.
    test_interval: float = field(default=3600.0, metadata={"minimum": 0.0})


@dataclass(frozen=True)
class HttpSection:
    """The HTTP API (voeventdb-compatible ``/apiv1/``), VOEvent submission, health and metrics."""

    enabled: bool = True
    host: str = "127.0.0.1"
    #: 0 picks a free port (tests).
    port: int = field(default=8080, metadata={"minimum": 0})
    #: Bearer token for ``POST /api/voevents`` (``env:NAME`` or ``file:/path`` to keep it out
    #: of the file). Empty: submission is refused (403). It also opens the protected reads.
    token: str = ""
    #: Bearer token (or sign-in) for the protected reads only: the event log, trigger requests,
    #: the audit page and the live stream's non-public event types (``env:``/``file:`` as for
    #: ``token``). Empty: only ``token`` opens them; with neither they are closed.
    read_token: str = ""
    #: Serve the protected reads to anyone, without a token (an explicit choice: they show who
    #: is on duty, pending trigger requests and the commands Burst Advocates gave).
    public_read: bool = False
    #: Prefix when served behind a reverse proxy, e.g. ``/burstbus``.
    base_path: str = ""
    #: The web UI's address as users reach it (``https://fsc.example/burstbus``), for links in
    #: chat messages. Empty: ``http://host:port`` + base_path.
    public_url: str = ""

    def link_base(self) -> str:
        """Where links in messages point: ``public_url``, else this server's own address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}{self.base_path}"


@dataclass(frozen=True)
class Config:
    data: DataSection = DataSection()
    log: LogSection = LogSection()
    ingest: IngestSection = IngestSection()
    bursts: BurstsSection = BurstsSection()
    vtp: VTPSection = VTPSection()
    nats: NatsSection = NatsSection()
    http: HttpSection = HttpSection()
    xmpp: XmppSection = XmppSection()
    slack: SlackSection = SlackSection()
    acl: AclSection = AclSection()
    triggers: TriggersSection = TriggersSection()
    authority: AuthoritySection = AuthoritySection()

    @property
    def trigger_streams(self) -> tuple[str, ...]:
        """Every IVORN stream an approved trigger can be published under."""
        triggers = self.triggers
        return (f"ivo://{triggers.authority}/trigger", *(t.stream(triggers.authority) for t in triggers.telescopes))

    def authority_policy(self) -> AuthorityPolicy:
        """Who may publish under which IVORNs (:mod:`burstbus.authority`), for the ingest."""
        own = (f"ivo://{self.triggers.authority}/", self.vtp.local_ivo)
        return AuthorityPolicy.of(self.authority, trigger_streams=self.trigger_streams, own=own)

    @property
    def data_dir(self) -> Path:
        return self.data.dir

    @property
    def log_path(self) -> Path:
        return self.data.dir / "log.sqlite"

    @property
    def projections_path(self) -> Path:
        return self.data.dir / "projections.sqlite"

    @property
    def state_path(self) -> Path:
        """Handlers' own state (e.g. the burst index) and outbox checkpoints."""
        return self.data.dir / "state.sqlite"


VALID_ROLES = ("observation", "prediction", "utility", "test")


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the configuration from defaults, file, environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    raw: dict[str, dict[str, Any]] = {}
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        try:
            with open(path, "rb") as handle:
                loaded = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(str(path), "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from None
        for section, values in loaded.items():
            if not isinstance(values, dict):
                raise ConfigError(section, "must be a [section] table")
            raw[section] = dict(values)
    _merge_environment(raw, environ)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    config = _build(Config, raw, "")
    _check(config)
    return config


def _merge_environment(raw: dict[str, dict[str, Any]], environ: Mapping[str, str]) -> None:
    sections = {f.name: f for f in fields(Config)}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section = next((s for s in sorted(sections, key=len, reverse=True) if rest.startswith(s + "_")), None)
        if section is None:
            continue  # other BURSTBUS_* variables (e.g. test switches) are not configuration
        key = rest[len(section) + 1 :]
        raw.setdefault(section, {})[key] = _EnvText(value)


class _EnvText(str):
    """A value that came from the environment: text to be converted to the field's type."""


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in known:
            hint = ", ".join(sorted(known))
            raise ConfigError(f"{where}{key}", f"unknown key (known here: {hint})")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, spec in known.items():
        key = f"{where}{name}"
        if name in values:
            kwargs[name] = _convert(hints[name], values[name], key, spec.metadata)
        elif spec.default is MISSING and spec.default_factory is MISSING:
            raise ConfigError(key, "is required")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, key: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(key, "must be a table")
        return _build(hint, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, _EnvText) and value == ""):
            return None
        return _convert(options[0], value, key, meta)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if isinstance(value, _EnvText):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(key, "must be a list")
        return tuple(_convert(item, v, f"{key}[{i}]", meta) for i, v in enumerate(value))
    if hint is bool:
        if isinstance(value, _EnvText):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, not {value!r}")
        return value
    if hint in (int, float):
        try:
            number = hint(value) if isinstance(value, _EnvText | int | float) and not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or (hint is int and isinstance(value, float)):
            raise ConfigError(key, f"must be {'an integer' if hint is int else 'a number'}, not {value!r}")
        if "minimum" in meta and number < meta["minimum"]:
            raise ConfigError(key, f"must be at least {meta['minimum']}, not {number}")
        return number
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a path string, not {value!r}")
        return Path(value).expanduser()
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, not {value!r}")
        choices = meta.get("choices")
        if choices:
            upper = {c.upper(): c for c in choices}
            if value.upper() not in upper:
                raise ConfigError(key, f"must be one of {', '.join(choices)}, not {value!r}")
            return upper[value.upper()]
        return str(value)
    raise ConfigError(key, f"unsupported type {hint!r}")  # a programming error in a section


def _check(config: Config) -> None:
    """Cross-field checks that a single field's type cannot express."""
    for i, role in enumerate(config.bursts.roles):
        if role not in VALID_ROLES:
            raise ConfigError(f"bursts.roles[{i}]", f"must be one of {', '.join(VALID_ROLES)}, not {role!r}")
    from lxml import etree

    names = set()
    for i, rule in enumerate(config.bursts.rules):
        if rule.name in names:
            raise ConfigError(f"bursts.rules[{i}].name", f"duplicate rule name {rule.name!r}")
        names.add(rule.name)
        try:
            etree.XPath(rule.xpath)
        except etree.XPathSyntaxError as exc:
            raise ConfigError(f"bursts.rules[{i}].xpath", f"not a valid XPath: {exc}") from None
    _check_vtp(config.vtp)
    check_nats(config.nats)
    check_xmpp(config.xmpp)
    check_slack(config.slack)
    check_log_jetstream(config.log)
    check_bot(config.acl, config.triggers)
    try:
        check_authority(config.authority, config.trigger_streams)
    except AuthorityConfigError as exc:
        raise ConfigError(exc.key, exc.problem) from None
    if config.http.base_path and (not config.http.base_path.startswith("/") or config.http.base_path.endswith("/")):
        raise ConfigError("http.base_path", f"must start with / and not end with one, like /burstbus (got {config.http.base_path!r})")
    if config.http.token:
        resolve_secret(config.http.token, "http.token")
    if config.http.read_token and not resolve_secret(config.http.read_token, "http.read_token").strip():
        raise ConfigError("http.read_token", "resolves to an empty value (leave the key out to use only http.token)")


def _check_vtp(vtp: VTPSection) -> None:
    import ipaddress

    from lxml import etree

    def network(value: str, key: str) -> None:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise ConfigError(key, f"not an IP network (CIDR): {exc}") from None

    def xpath(value: str, key: str) -> None:
        try:
            etree.XPath(value)
        except etree.XPathSyntaxError as exc:
            raise ConfigError(key, f"not a valid XPath: {exc}") from None

    for name in ("author_allow", "subscriber_allow"):
        for i, value in enumerate(getattr(vtp, name)):
            network(value, f"vtp.{name}[{i}]")
    for i, flt in enumerate(vtp.subscriber_filters):
        network(flt.network, f"vtp.subscriber_filters[{i}].network")
        xpath(flt.xpath, f"vtp.subscriber_filters[{i}].xpath")
    for i, upstream in enumerate(vtp.upstreams):
        if not upstream.host:
            raise ConfigError(f"vtp.upstreams[{i}].host", "must not be empty")
        for j, value in enumerate(upstream.filters):
            xpath(value, f"vtp.upstreams[{i}].filters[{j}]")
    if not vtp.local_ivo.startswith("ivo://"):
        raise ConfigError("vtp.local_ivo", f"must be an ivo:// identifier, not {vtp.local_ivo!r}")


def with_data_dir(config: Config, data_dir: Path) -> Config:
    return replace(config, data=replace(config.data, dir=data_dir))


def resolve_secret(value: str, key: str) -> str:
    """``env:NAME`` → that variable, ``file:/path`` → that file's first line, else the value."""
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(key, f"environment variable {name} is not set")
        return os.environ[name]
    if value.startswith("file:"):
        try:
            return Path(value[5:]).read_text().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ConfigError(key, f"cannot read secret file {value[5:]}: {exc}") from None
    return value
