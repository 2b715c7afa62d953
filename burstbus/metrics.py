"""The metrics registry: components report their own figures to ``/metrics``.

A provider is a callable (sync or async) returning metric :class:`Family` objects; the
service registers one per component (``providers["vtp"] = vtp_metrics(node, log)``) in the
dict it hands to ``make_app(metrics=...)``, kept by reference so components started later
can add theirs. ``/metrics`` calls each one per scrape: a provider that fails or is slow is
reported as ``burstbus_metrics_provider_up{provider="..."} 0`` and the rest still answer.

Stdlib only, in the core: every component builds its own families (``Component.metrics``)
without pulling in aiohttp; the HTTP bridge only renders them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from burstbus.histogram import DEFAULT_BOUNDS, Histogram  # noqa: F401  (re-exported for providers)

Labels = Mapping[str, str]

#: Seconds: from 100 µs (a fast group commit) to 10 s (a stalled disk).

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
KINDS = ("counter", "gauge", "histogram")


@dataclass(frozen=True)
class Family:
    """One metric family. ``samples`` are ``(suffix, labels, value)``: the suffix is empty
    for counters and gauges, ``_bucket``/``_sum``/``_count`` for a histogram's lines."""

    name: str
    kind: str
    help: str
    samples: Sequence[tuple[str, Labels, float]]

    def check(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {', '.join(KINDS)}")
        for _, labels, _value in self.samples:
            for key in labels:
                if not _LABEL.fullmatch(key):
                    raise ValueError(f"metric {self.name}: invalid label name {key!r}")


def counter(name: str, help_: str, samples: Iterable[tuple[Labels, float]]) -> Family:
    return Family(name, "counter", help_, [("", labels, value) for labels, value in samples])


def gauge(name: str, help_: str, samples: Iterable[tuple[Labels, float]]) -> Family:
    return Family(name, "gauge", help_, [("", labels, value) for labels, value in samples])


class HistogramLike(Protocol):
    """What :func:`histogram` reads: bucket upper bounds, cumulative counts per bound plus
    the total last (``len(counts) == len(bounds) + 1``) and the sum of observations."""

    @property
    def bounds(self) -> Sequence[float]: ...

    @property
    def counts(self) -> Sequence[int]: ...

    @property
    def sum(self) -> float: ...


def histogram(name: str, help_: str, series: Iterable[tuple[Labels, HistogramLike]]) -> Family:
    samples: list[tuple[str, Labels, float]] = []
    for labels, h in series:
        for bound, n in zip((*h.bounds, math.inf), h.counts, strict=True):
            le = "+Inf" if math.isinf(bound) else repr(float(bound))
            samples.append(("_bucket", {**labels, "le": le}, n))
        samples.append(("_sum", labels, float(h.sum)))
        samples.append(("_count", labels, h.counts[-1]))
    return Family(name, "histogram", help_, samples)


MetricsProvider = Callable[[], Iterable[Family] | Awaitable[Iterable[Family]]]
#: The registry the service fills: provider name → provider.
Metrics = MutableMapping[str, MetricsProvider]


def latest(*times: str | None) -> str | None:
    """The most recent of several ISO-8601 UTC times (fixed width: text order is time order)."""
    known = [t for t in times if t]
    return max(known) if known else None
