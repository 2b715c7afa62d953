"""A latency histogram in Prometheus's shape, with nothing but the standard library.

Kept out of the HTTP package so the log (``store/``) can observe into one without importing
aiohttp; ``/metrics`` reads it (``bridges/http/metrics.histogram``).
"""

from __future__ import annotations

from collections.abc import Sequence

#: Seconds: 100 µs to 10 s, enough for an fsync'd append and for an HTTP request.
DEFAULT_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """A latency histogram to observe into (not thread-safe: observe on the loop)."""

    def __init__(self, bounds: Sequence[float] = DEFAULT_BOUNDS):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[i] += 1
        self.counts[-1] += 1
        self.sum += seconds
