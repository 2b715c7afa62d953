"""``[orchestrator]`` and ``[[pipelines]]``: which pipelines run on which data, and how.

Why a graph check at start: a pipeline that needs a kind nobody announces or produces waits
for ever without a word, and a cycle (A needs what B makes, B needs what A makes) never
starts at all. Both are typos in a file, so the start is refused with the key and the
problem (``ConfigError``), the way every other section is checked.

A pipeline's **needs** are data kinds (``vhf.eclairs``, ``Q1.TT_ECL``): ``mode = "all"``
waits for every kind (and shows ``idling`` while it has some), ``"any"`` starts on the
first; ``scope = "burst"`` gathers the burst's data of those kinds, ``"observation"`` runs
once per observation id. It is dispatched by a NATS request to ``nats_subject`` or an HTTP
POST to ``url`` (exactly one). Kinds come from outside (``[orchestrator] data_kinds``:
what services announce) or from another pipeline's ``produces``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from burstbus.acl import ROLE_NAMES
from burstbus.config import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KIND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,99}$")
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")

MODES = ("all", "any")
SCOPES = ("burst", "observation")


@dataclass(frozen=True)
class Pipeline:
    """One ``[[pipelines]]`` entry."""

    #: The pipeline's name (letters, digits, _ . -): what ``process NAME BURST`` and the events say.
    name: str
    #: The process name in the table and in status messages (default: the pipeline's name).
    process: str = ""
    #: Data kinds it takes as inputs.
    needs: tuple[str, ...] = ()
    #: ``all``: every kind in ``needs``; ``any``: at least one of them.
    mode: str = field(default="all", metadata={"choices": MODES})
    #: ``burst``: one run per burst; ``observation``: one run per observation id of the burst.
    scope: str = field(default="burst", metadata={"choices": SCOPES})
    #: Dispatch by a NATS request to this subject …
    nats_subject: str = ""
    #: … or by an HTTP POST of the same JSON to this URL (the REST processing request).
    url: str = ""
    #: Kinds its runs announce as products (``data.available`` with ``produced_by``).
    produces: tuple[str, ...] = ()
    #: Seconds without any sign of life (dispatch answer, status) before a run is ``vanished``.
    timeout: float = field(default=600.0, metadata={"minimum": 1.0})
    #: Attempts in all, the first included; a failed or vanished attempt below it is retried.
    max_attempts: int = field(default=3, metadata={"minimum": 1})
    #: Seconds before the first retry; doubled for each later one.
    backoff: float = field(default=30.0, metadata={"minimum": 0.0})
    #: Parameters every run gets (a request by hand may override them).
    parameters: dict[str, str] = field(default_factory=dict)
    #: Roles (``[acl]``) that may request a run by hand (``process PIPELINE BURST``).
    request_roles: tuple[str, ...] = ("ba",)

    @property
    def process_name(self) -> str:
        return self.process or self.name

    @property
    def target(self) -> dict[str, str]:
        """Where it is dispatched, as recorded in ``process.requested``."""
        return {"nats": self.nats_subject} if self.nats_subject else {"url": self.url}


@dataclass(frozen=True)
class PipelinesSection:
    """``[[pipelines]]``: the array of pipeline tables."""

    #: The pipelines, one ``[[pipelines]]`` table each (see docs/architecture.md, "The orchestrator").
    pipelines: tuple[Pipeline, ...] = ()

    def pipeline(self, name: str) -> Pipeline | None:
        """The pipeline of that name, compared case-insensitively (typed on phones)."""
        wanted = name.strip().casefold()
        return next((p for p in self.pipelines if p.name.casefold() == wanted), None)


@dataclass(frozen=True)
class OrchestratorSection:
    """``[orchestrator]``: the orchestrator itself."""

    #: Off: data and statuses are still recorded, nothing is started or watched.
    enabled: bool = True
    #: Kinds announced from outside the pipelines (instrument data, services).
    data_kinds: tuple[str, ...] = ()
    #: Seconds a dispatch (NATS request, HTTP POST) may take before its answer counts as
    #: unknown: the run is then watched like a dispatched one (the worker may have it).
    dispatch_timeout: float = field(default=10.0, metadata={"minimum": 0.1})
    #: Dispatches in flight at once.
    max_dispatches: int = field(default=64, metadata={"minimum": 1})
    #: A first start follows the log from its beginning (every burst in it gets its runs)
    #: instead of from its head (only what arrives from now on).
    from_beginning: bool = False


def _suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_pipelines(orchestrator: OrchestratorSection, section: PipelinesSection) -> None:
    """Every pipeline well formed, every needed kind announced or produced, no cycle; raises
    ``ConfigError`` naming the key."""
    for i, kind in enumerate(orchestrator.data_kinds):
        if not KIND.match(kind):
            raise ConfigError(f"orchestrator.data_kinds[{i}]", f"not a data kind (letters, digits, _ . : + -): {kind!r}")
    names: set[str] = set()
    produced: dict[str, list[str]] = {}
    for i, p in enumerate(section.pipelines):
        key = f"pipelines[{i}]"
        if not _NAME.match(p.name):
            raise ConfigError(f"{key}.name", f"must be letters, digits, _ . - (up to 64), not {p.name!r}")
        if p.name.casefold() in names:
            raise ConfigError(f"{key}.name", f"duplicate pipeline {p.name!r} (names ignore case)")
        names.add(p.name.casefold())
        if p.process and not _NAME.match(p.process):
            raise ConfigError(f"{key}.process", f"must be letters, digits, _ . - (up to 64), not {p.process!r}")
        if not p.needs:
            raise ConfigError(f"{key}.needs", "a pipeline needs at least one data kind")
        for j, kind in enumerate(p.needs):
            if not KIND.match(kind):
                raise ConfigError(f"{key}.needs[{j}]", f"not a data kind (letters, digits, _ . : + -): {kind!r}")
        for j, kind in enumerate(p.produces):
            if not KIND.match(kind):
                raise ConfigError(f"{key}.produces[{j}]", f"not a data kind (letters, digits, _ . : + -): {kind!r}")
            produced.setdefault(kind, []).append(p.name)
        if bool(p.nats_subject) == bool(p.url):
            raise ConfigError(key, "needs exactly one way to dispatch it: nats_subject or url")
        if p.nats_subject and not all(_SUBJECT_TOKEN.match(t) for t in p.nats_subject.split(".")):
            raise ConfigError(f"{key}.nats_subject", f"not a NATS subject (tokens of letters, digits, _ -): {p.nats_subject!r}")
        if p.url:
            parts = urlsplit(p.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"{key}.url", f"must be an http:// or https:// URL, not {p.url!r}")
        for j, role in enumerate(p.request_roles):
            if role not in ROLE_NAMES:
                raise ConfigError(f"{key}.request_roles[{j}]", f"must be one of {', '.join(ROLE_NAMES)}, not {role!r}")
        for name in p.parameters:
            if not _PARAMETER.match(name):
                raise ConfigError(f"{key}.parameters.{name}", "a parameter name is letters, digits, _ . - (up to 64)")
    known = sorted(set(orchestrator.data_kinds) | set(produced))
    for i, p in enumerate(section.pipelines):
        for j, kind in enumerate(p.needs):
            if kind not in known:
                raise ConfigError(
                    f"pipelines[{i}].needs[{j}]",
                    f"no pipeline produces {kind!r} and orchestrator.data_kinds does not list it{_suggest(kind, known)}",
                )
    cycle = find_cycle(section.pipelines)
    if cycle:
        first = next(i for i, p in enumerate(section.pipelines) if p.name == cycle[0][0])
        path = " → ".join(f"{name} (makes {kind})" for name, kind in cycle) + f" → {cycle[0][0]}"
        raise ConfigError(f"pipelines[{first}].produces", f"the pipelines form a cycle, none could ever start: {path}")


def find_cycle(pipelines: tuple[Pipeline, ...]) -> list[tuple[str, str]]:
    """A cycle as (pipeline, the kind it makes that the next one needs), or ``[]``."""
    consumers: dict[str, list[Pipeline]] = {}
    for p in pipelines:
        for kind in p.needs:
            consumers.setdefault(kind, []).append(p)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[tuple[str, str]] = []

    def visit(p: Pipeline) -> list[tuple[str, str]]:
        state[p.name] = 1
        for kind in p.produces:
            for nxt in consumers.get(kind, ()):
                path.append((p.name, kind))
                if state.get(nxt.name) == 1:
                    start = next(k for k, (name, _) in enumerate(path) if name == nxt.name)
                    return path[start:]
                if state.get(nxt.name) is None:
                    found = visit(nxt)
                    if found:
                        return found
                path.pop()
        state[p.name] = 2
        return []

    for p in pipelines:
        if p.name not in state:
            found = visit(p)
            if found:
                return found
    return []
