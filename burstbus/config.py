"""Configuration: one TOML file, environment overrides, and refusal of anything unknown.

Sources, later ones winning: built-in defaults → the TOML file (``--config``, else
``./burstbus.toml`` if present) → ``BURSTBUS_<SECTION>_<KEY>`` environment variables →
command-line options the CLI maps onto keys (e.g. ``--data-dir``).

A bad key or value stops the start with a :class:`ConfigError` naming ``section.key`` and
what is wrong: a typo in an ACL must never silently fall back to a default.

Each section is a frozen dataclass; a field's ``metadata`` may carry ``choices`` and
``minimum``. The core's own sections (data, log, ingest, bursts, authority, signatures) are here; every
other section lives beside the package that reads it, which registers it with its checks
(:class:`SectionSpec`, ``burstbus.component.ComponentPackage``): this module names no
transport. Values of the form ``env:NAME`` or ``file:/path`` in secret fields are read from
there.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from burstbus.authority import (
    AuthorityConfigError,
    AuthorityPolicy,
    AuthoritySection,
    check_authority,
)
from burstbus.catalogue import VOEVENT_ROLES
from burstbus.fieldcomments import meaning
from burstbus.signing.policy import SignaturesConfigError, SignaturesSection, check_signatures
from burstbus.voevent.kinds import KINDS as NOTICE_KINDS

ENV_PREFIX = "BURSTBUS_"
DEFAULT_CONFIG_FILE = Path("burstbus.toml")


class ConfigError(ValueError):
    """A configuration problem, with the dotted key it concerns."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"configuration error at {key}: {problem}")
        self.key = key
        self.problem = problem

    def explained(self, what_the_key_is: str | None) -> ConfigError:
        """The same error, saying also what the key is (its field comment's first sentence):
        ``must be a number, not '30s'`` alone does not say the number is in seconds."""
        if not what_the_key_is:
            return self
        return ConfigError(self.key, f"{self.problem} ({self.key.rpartition('.')[2]}: {what_the_key_is})")


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


@dataclass(frozen=True)
class DataSection:
    """Where burstbus keeps its files: ``log.sqlite``, ``projections.sqlite``, state."""

    #: The data directory (relative to where burstbus runs; ``--data-dir`` overrides it).
    dir: Path = Path("burstbus-data")


@dataclass(frozen=True)
class LogSection:
    #: ``sqlite`` (DATA_DIR/log.sqlite) or a backend a package registers (``jetstream``: a
    #: replicated stream for clusters; each node
    #: keeps its projections and handler state in local SQLite following it).
    backend: str = "sqlite"
    #: SQLite. FULL: an acknowledged append survives a power cut. NORMAL: survives a crash only.
    synchronous: str = field(default="FULL", metadata=_choices("FULL", "NORMAL", "EXTRA"))
    #: How soon a reader notices appends made by another process or node (seconds).
    poll_interval: float = field(default=0.5, metadata={"minimum": 0.01})
    #: JetStream: seed URLs of the cluster holding the log (comma-separated). Empty: the
    #: messaging bridge's servers, or its embedded server when it has none.
    jetstream_url: str = ""
    #: JetStream: the stream's name (created if missing) and its replicas (3 in a cluster).
    stream: str = "BURSTBUS_LOG"
    replicas: int = field(default=1, metadata={"minimum": 1})
    #: JetStream: the message-id dedupe window (seconds); ids stay unique beyond it anyway.
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

    #: A name for the rule, in logs and in the decision's ``rule`` field.
    name: str
    #: XPath 1.0 over the VOEvent (namespaces as in the packet); its first string is the id.
    xpath: str
    #: Put before the selected text (``GRB``, ``SVOM-``), so ids from different rules never clash.
    prefix: str = ""


@dataclass(frozen=True)
class BurstsSection:
    #: Which VOEvent roles may open or join a burst (test packets never do by default).
    roles: tuple[str, ...] = ("observation",)
    #: Operator rules, tried before the built-in ones.
    rules: tuple[BurstRule, ...] = ()
    #: Kinds of notice that may open a new burst by their GCN trigger number (TrigID):
    #: grb, gw, counterpart, neutrino, microlensing, transient, pointing, other (a packet no
    #: table classifies). Other kinds still join a burst by citation or a known id; a
    #: Burst_Id or GraceID (the burst's own name) opens its burst whatever the kind.
    kinds: tuple[str, ...] = ("grb", "gw", "other")
    #: Kinds that take part in the cross-mission coincidence rule, on both sides (empty: off).
    coincidence_kinds: tuple[str, ...] = ("grb",)
    #: Coincidence: largest difference of event times, in seconds, between notices of two
    #: missions that make them one burst (SVOM/Fermi pairs of the archive: 0.0–6.5 s).
    coincidence_window: float = field(default=10.0, metadata={"minimum": 0.0, "maximum": 600.0})
    #: Coincidence: when both have a position with a known error, the separation allowed, in
    #: combined errors (sqrt(err1^2 + err2^2)).
    coincidence_sigma: float = field(default=3.0, metadata={"minimum": 0.0})
    #: Coincidence: the allowed separation never exceeds this many degrees.
    coincidence_max_separation: float = field(default=30.0, metadata={"minimum": 0.0, "maximum": 180.0})


@dataclass(frozen=True)
class SectionSpec:
    """A configuration section a package owns: ``[name]`` read into the frozen dataclass ``type``.

    ``array``: the section is a top-level array of tables (``[[pipelines]]``), read into the
    dataclass's one field of the same name; its keys are named ``pipelines[0].needs`` …"""

    name: str
    type: type
    array: bool = False


@dataclass(frozen=True)
class Claims:
    """The IVORNs a package speaks for, for the authority rule (:mod:`burstbus.authority`):
    ``trigger_streams`` only the trigger workflow may publish in; ``own`` the centre's IVORNs
    whose authorities are reserved to burstbus's components."""

    trigger_streams: tuple[str, ...] = ()
    own: tuple[str, ...] = ()


class SectionProvider(Protocol):
    """What the loader needs of a registered package (``burstbus.component.ComponentPackage``)."""

    @property
    def name(self) -> str: ...

    @property
    def sections(self) -> tuple[SectionSpec, ...]: ...

    @property
    def check(self) -> Callable[[Config], None]: ...

    @property
    def claims(self) -> Callable[[Config], Claims]: ...

    @property
    def log_backends(self) -> Mapping[str, Any]: ...


#: The entry-point group packages register in (pyproject.toml ``[project.entry-points]``).
ENTRY_POINT_GROUP = "burstbus.components"


def registered_packages() -> list[Any]:
    """Every package registered under :data:`ENTRY_POINT_GROUP` (loaded once per process).

    The core discovers them: it never imports a transport, and a new one is one line in
    pyproject.toml plus its package."""
    global _REGISTERED
    if _REGISTERED is None:
        from importlib.metadata import entry_points

        _REGISTERED = [point.load() for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name)]
    return list(_REGISTERED)


_REGISTERED: list[Any] | None = None

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    """The whole configuration: the core's sections as fields, every package's by name.

    A package reads its own section with :meth:`section` (typed); ``config.<name>`` also reads
    one (untyped), for tools and tests."""

    data: DataSection = DataSection()
    log: LogSection = LogSection()
    ingest: IngestSection = IngestSection()
    bursts: BurstsSection = BurstsSection()
    authority: AuthoritySection = AuthoritySection()
    signatures: SignaturesSection = SignaturesSection()
    #: The packages' sections, by section name.
    sections: Mapping[str, Any] = field(default_factory=dict)
    #: What the packages speak for (trigger streams, own IVORNs), for the authority rule.
    claims: Claims = Claims()

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"the configuration has no section {name!r}")

    def section(self, kind: type[T]) -> T:
        """The section of this type (a package's own); its defaults if the package registered it
        but the file does not mention it."""
        for value in self.sections.values():
            if type(value) is kind:
                return value
        raise KeyError(f"no configuration section of type {kind.__name__} is registered")

    def with_section(self, name: str, value: Any) -> Config:
        """A copy with one section replaced (``burstbus demo`` adds a read token)."""
        if name in {f.name for f in fields(self)}:
            return replace(self, **{name: value})
        return replace(self, sections={**self.sections, name: value})

    @property
    def trigger_streams(self) -> tuple[str, ...]:
        """Every IVORN stream an approved trigger can be published under."""
        return self.claims.trigger_streams

    def authority_policy(self) -> AuthorityPolicy:
        """Who may publish under which IVORNs (:mod:`burstbus.authority`), for the ingest."""
        return AuthorityPolicy.of(self.authority, trigger_streams=self.claims.trigger_streams, own=self.claims.own)

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


VALID_ROLES = VOEVENT_ROLES
_CORE_SECTIONS = ("data", "log", "ingest", "bursts", "authority", "signatures")


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    packages: Sequence[SectionProvider] | None = None,
) -> Config:
    """Build the configuration from defaults, file, environment and explicit overrides.

    ``packages``: whose sections to read (default: every registered package)."""
    providers = list(registered_packages() if packages is None else packages)
    specs: dict[str, SectionSpec] = {}
    for provider in providers:
        for spec in provider.sections:
            if spec.name in specs or spec.name in _CORE_SECTIONS:
                raise ConfigError(spec.name, f"section registered twice (again by {provider.name})")
            specs[spec.name] = spec
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
            if section in specs and specs[section].array:
                if not isinstance(values, list):
                    raise ConfigError(section, f"must be an array of tables: [[{section}]] entries")
                raw[section] = {section: values}
                continue
            if not isinstance(values, dict):
                raise ConfigError(section, "must be a [section] table")
            raw[section] = dict(values)
    names = (*_CORE_SECTIONS, *specs)
    _merge_environment(raw, environ, names)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(unknown[0], f"unknown section (known: {', '.join(sorted(names))})")
    core = {name: raw[name] for name in _CORE_SECTIONS if name in raw}
    config = _build(Config, core, "")
    sections = {name: _build(spec.type, raw.get(name, {}), "" if spec.array else f"{name}.") for name, spec in specs.items()}
    config = replace(config, sections=sections)
    streams: list[str] = []
    own: list[str] = []
    for provider in providers:
        claimed = provider.claims(config)
        streams += claimed.trigger_streams
        own += claimed.own
    config = replace(config, claims=Claims(tuple(dict.fromkeys(streams)), tuple(dict.fromkeys(own))))
    backends = ["sqlite", *(name for provider in providers for name in provider.log_backends)]
    if config.log.backend not in backends:
        raise ConfigError("log.backend", f"must be one of {', '.join(backends)}, not {config.log.backend!r}")
    _check(config)
    for provider in providers:
        provider.check(config)
    return config


def _merge_environment(raw: dict[str, dict[str, Any]], environ: Mapping[str, str], sections: Sequence[str]) -> None:
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
    known = {f.name: f for f in fields(cls) if not (cls is Config and f.name in ("sections", "claims"))}
    for key in values:
        if key not in known:
            hint = ", ".join(sorted(known))
            raise ConfigError(f"{where}{key}", f"unknown key (known here: {hint})")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, spec in known.items():
        key = f"{where}{name}"
        if name in values:
            try:
                kwargs[name] = _convert(hints[name], values[name], key, spec.metadata)
            except ConfigError as exc:
                if exc.key != key:
                    raise
                raise exc.explained(meaning(cls, name)) from None
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
    if origin is dict:
        return _convert_table(hint, value, key, meta)
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
        if "maximum" in meta and number > meta["maximum"]:
            raise ConfigError(key, f"must be at most {meta['maximum']}, not {number}")
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


def _convert_table(hint: Any, value: Any, key: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``dict[str, T]``: a TOML table of free keys (librdkafka settings). For ``str`` values a
    number or boolean is taken as its text (``linger.ms = 5`` → ``"5"``, ``true`` → ``"true"``),
    as such settings are strings to the library. Not settable from the environment."""
    key_type, item = typing.get_args(hint)
    if key_type is not str:
        raise ConfigError(key, f"unsupported type {hint!r}")  # a programming error in a section
    if isinstance(value, _EnvText) or not isinstance(value, dict):
        raise ConfigError(key, "must be a table (set it in the configuration file)")
    out: dict[str, Any] = {}
    for name, raw in value.items():
        if item is str and isinstance(raw, bool):
            raw = "true" if raw else "false"
        elif item is str and isinstance(raw, int | float):
            raw = str(raw)
        out[str(name)] = _convert(item, raw, f"{key}.{name}", meta)
    return out


def _check(config: Config) -> None:
    """Cross-field checks of the core's sections (each package checks its own)."""
    for i, role in enumerate(config.bursts.roles):
        if role not in VALID_ROLES:
            raise ConfigError(f"bursts.roles[{i}]", f"must be one of {', '.join(VALID_ROLES)}, not {role!r}")
    for name in ("kinds", "coincidence_kinds"):
        for i, kind in enumerate(getattr(config.bursts, name)):
            if kind not in NOTICE_KINDS:
                raise ConfigError(f"bursts.{name}[{i}]", f"must be one of {', '.join(NOTICE_KINDS)}, not {kind!r}")
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
    try:
        check_authority(config.authority, config.trigger_streams)
    except AuthorityConfigError as exc:
        raise ConfigError(exc.key, exc.problem) from None
    try:
        check_signatures(config.signatures)
    except SignaturesConfigError as exc:
        raise ConfigError(exc.key, exc.problem) from None


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
