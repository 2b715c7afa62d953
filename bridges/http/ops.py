"""Operations endpoints: ``/healthz`` (JSON) and ``/metrics`` (Prometheus text format 0.0.4).

:data:`Components` maps each running component's name to its probe (sync or async, returning
``{"up": bool, "last_activity": iso-time | None, ...}``): a live view of the service's
components (``bridges/http/component.py``), whatever they are. The log and the projections
are always reported.

Components report metrics through providers in :data:`~burstbus.metrics.Metrics`
(name → callable returning metric families). The
log backend reports its own families (``EventLog.metrics``: appends, latency, retries).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from aiohttp import web

from burstbus.bridges.http.errors import ApiError, json_response
from burstbus.bridges.http.spec import Route
from burstbus.ingest import Ingest
from burstbus.metrics import Family, Metrics
from burstbus.store.base import EventLog
from burstbus.store.lag import consumer_lag
from burstbus.store.reader import ProjectionReader, ReadModelError

log = logging.getLogger(__name__)

Probe = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
#: The registry the service fills: component name → probe.
Components = MutableMapping[str, Probe]

#: How long one probe may take before it counts as down.
PROBE_TIMEOUT = 2.0

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpStats:
    """Requests served, by method, route and status; durations by route (a histogram)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        #: Wrong tokens by kind (``bearer``, ``signin``) and refusals while throttled.
        self.auth_failures: Counter[str] = Counter()
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        counts = self.buckets.setdefault(route, [0] * (len(_DURATION_BUCKETS) + 1))
        for i, bound in enumerate(_DURATION_BUCKETS):
            if seconds <= bound:
                counts[i] += 1
        counts[-1] += 1  # +Inf
        self.sums[route] = self.sums.get(route, 0.0) + seconds


def _checkpoints(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
    return conn.execute("SELECT name, seq, version FROM projection_checkpoints ORDER BY name").fetchall()


def _event_types() -> dict[str, tuple[str, ...]]:
    from burstbus.store.projections.registry import all_projections

    return {p.name: tuple(sorted(p.event_types)) for p in all_projections()}


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class Ops:
    def __init__(
        self,
        log: EventLog,
        reader: ProjectionReader,
        ingest: Ingest | None,
        components: Components,
        stats: HttpStats,
        metrics: Metrics | None = None,
    ):
        self.providers: Metrics = metrics if metrics is not None else {}
        self.log = log
        self.reader = reader
        self.ingest = ingest
        self.components = components
        self.stats = stats
        self.started = time.time()
        self._types = _event_types()

    # -- probes ------------------------------------------------------------------------

    async def _log_state(self) -> dict[str, Any]:
        try:
            head = await self.log.head()
        except Exception as exc:
            return {"up": False, "error": str(exc) or type(exc).__name__}
        return {"up": True, "head_seq": head.seq, "head_hash": head.hash, "last_activity": head.recorded_at}

    async def _projections(self, head_seq: int | None) -> dict[str, Any]:
        try:
            rows = await self.reader.run(_checkpoints)
        except (ApiError, ReadModelError) as exc:
            return {"up": False, "error": exc.message, "projections": {}}
        except Exception as exc:  # a closed reader, a broken file: report it, do not fail
            return {"up": False, "error": str(exc) or type(exc).__name__, "projections": {}}
        found: dict[str, Any] = {}
        for name, seq, version in rows:
            entry: dict[str, Any] = {"applied_seq": seq, "version": version}
            if head_seq is not None:
                entry["lag"] = await self._lag(name, seq, head_seq)
            found[name] = entry
        return {"up": True, "projections": found}

    async def _lag(self, name: str, applied: int, head_seq: int) -> int:
        """Events after the checkpoint, or 0 when none of them is one this projection reads.

        (A following runner moves its checkpoint only to the last event it applied, so
        ``head - applied`` alone would report a lag that is only ignored event types.)
        """
        try:
            return await consumer_lag(self.log, applied, head_seq, self._types.get(name))
        except Exception:  # the log went away mid-scrape: report the plain difference
            return max(0, head_seq - applied)

    async def _probe(self, name: str, probe: Probe) -> dict[str, Any]:
        try:
            result = probe()
            if inspect.isawaitable(result):
                async with asyncio.timeout(PROBE_TIMEOUT):
                    result = await result
            state = {str(k): _iso(v) for k, v in dict(result).items()}
        except Exception as exc:
            return {"up": False, "last_activity": None, "error": str(exc) or type(exc).__name__}
        state["up"] = bool(state.get("up"))
        state.setdefault("last_activity", None)
        return state

    async def _components(self) -> dict[str, dict[str, Any]]:
        names = list(self.components)
        states = await asyncio.gather(*(self._probe(n, self.components[n]) for n in names))
        return dict(zip(names, states, strict=True))

    # -- endpoints ---------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/healthz", self.healthz, "Health of the log, the projections and every component", "operations",
                  schema={"type": "object"}, responses={200: "everything is up", 503: "something is down (see which)"}),
            Route("GET", "/metrics", self.metrics, "Prometheus metrics (text format 0.0.4)", "operations",
                  content_type="text/plain", schema={"type": "string"}),
        ]  # fmt: skip

    async def healthz(self, request: web.Request) -> web.Response:
        """200 when the log, the projections and every registered component are up, else 503."""
        log_state = await self._log_state()
        projections = await self._projections(log_state.get("head_seq"))
        components = await self._components()
        up = log_state["up"] and projections["up"] and all(c["up"] for c in components.values())
        body = {
            "status": "ok" if up else "degraded",
            "log": log_state,
            "projections": projections,
            "components": components,
            "uptime_seconds": round(time.time() - self.started, 3),
        }
        return json_response(body, status=200 if up else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        out = Exposition()
        log_state = await self._log_state()
        out.gauge("burstbus_log_up", "1 when the event log answers.", [({}, int(log_state["up"]))])
        if log_state["up"]:
            seq = log_state["head_seq"]
            out.counter("burstbus_log_events_total", "Events in the log (the head seq: seq is gap-free).", [({}, seq)])
            out.gauge("burstbus_log_head_seq", "Seq of the newest event in the log.", [({}, seq)])
        for family in self.log.metrics():
            out.family(family)
        if self.ingest is not None:
            out.counter(
                "burstbus_ingest_packets_total",
                "VOEvent packets ingested, by transport and outcome (accepted/duplicate/rejected).",
                [({"via": via, "outcome": outcome}, n) for (via, outcome), n in sorted(self.ingest.counts.items())],
            )
        projections = await self._projections(log_state.get("head_seq"))
        out.gauge("burstbus_projections_up", "1 when the projections database can be read.", [({}, int(projections["up"]))])
        rows = sorted(projections["projections"].items())
        out.gauge("burstbus_projection_applied_seq", "Last log seq each projection has applied.",
                  [({"projection": n}, p["applied_seq"]) for n, p in rows])  # fmt: skip
        out.gauge("burstbus_projection_lag_events", "Log events after the projection's checkpoint (0 when none it reads is waiting).",
                  [({"projection": n}, p["lag"]) for n, p in rows if "lag" in p])  # fmt: skip
        components = await self._components()
        out.gauge("burstbus_component_up", "1 when the component reports itself up.",
                  [({"component": n}, int(c["up"])) for n, c in sorted(components.items())])  # fmt: skip
        out.counter("burstbus_http_requests_total", "HTTP requests answered, by method, route and status.",
                    [({"method": m, "route": r, "status": str(s)}, n) for (m, r, s), n in sorted(self.stats.requests.items())])  # fmt: skip
        out.counter("burstbus_http_auth_failures_total",
                    "Wrong tokens (bearer, signin) and requests refused while an address was throttled.",
                    [({"kind": k}, n) for k, n in sorted(self.stats.auth_failures.items())])  # fmt: skip
        out.histogram("burstbus_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
                      "route", self.stats.buckets, self.stats.sums)  # fmt: skip
        await self._provided(out)
        return web.Response(body=out.text().encode("utf-8"), headers={"Content-Type": PROMETHEUS_TYPE})


    async def _one_provider(self, name: str) -> list[Family]:
        result = self.providers[name]()
        if inspect.isawaitable(result):
            async with asyncio.timeout(PROBE_TIMEOUT):
                result = await result
        families = list(result)
        for family in families:
            family.check()
        return families

    async def _provided(self, out: Exposition) -> None:
        """Every registered provider's families; a failing one is reported, not fatal."""
        names = list(self.providers)
        results = await asyncio.gather(*(self._one_provider(n) for n in names), return_exceptions=True)
        up: list[tuple[Mapping[str, str], float]] = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.warning("metrics provider %s failed: %s", name, result)
                up.append(({"provider": name}, 0))
                continue
            up.append(({"provider": name}, 1))
            for family in result:
                out.family(family)
        out.gauge("burstbus_metrics_provider_up", "1 when the component's metrics provider answered.", up)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value) if isinstance(value, float) else str(value)


class Exposition:
    """Prometheus text exposition format (version 0.0.4)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: set[str] = set()

    def family(self, family: Family) -> None:
        """A provider's family; a name already written is skipped (one family per name)."""
        if family.name in self.names:
            log.warning("metric family %s reported twice; the second is dropped", family.name)
            return
        self.names.add(family.name)
        self.lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        self.lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in family.samples:
            self.lines.append(f"{family.name}{suffix}{_labels(labels)} {_number(value)}")

    def _family(self, name: str, kind: str, help_: str, samples: list[tuple[Mapping[str, str], float]]) -> None:
        self.names.add(name)
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def gauge(self, name: str, help_: str, samples: list[tuple[Mapping[str, str], float]]) -> None:
        self._family(name, "gauge", help_, samples)

    def counter(self, name: str, help_: str, samples: list[tuple[Mapping[str, str], float]]) -> None:
        self._family(name, "counter", help_, samples)

    def histogram(
        self, name: str, help_: str, label: str, buckets: Mapping[str, list[int]], sums: Mapping[str, float]
    ) -> None:
        self.names.add(name)
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} histogram")
        for key in sorted(buckets):
            counts = buckets[key]
            for bound, n in zip((*_DURATION_BUCKETS, math.inf), counts, strict=True):
                le = "+Inf" if math.isinf(bound) else repr(bound)
                self.lines.append(f"{name}_bucket{_labels({label: key, 'le': le})} {n}")
            self.lines.append(f"{name}_sum{_labels({label: key})} {sums.get(key, 0.0)!r}")
            self.lines.append(f"{name}_count{_labels({label: key})} {counts[-1]}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
