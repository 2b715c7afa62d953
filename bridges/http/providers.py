"""The HTTP side's own metrics provider: the SSE hub (every other component reports its own)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from burstbus.metrics import Family, MetricsProvider, counter, gauge

if TYPE_CHECKING:
    from burstbus.bridges.http.stream import EventHub


def stream_metrics(hub: EventHub, log: Any) -> MetricsProvider:
    """The SSE hub: clients, drops, events fanned out, and how far the follower is behind."""

    async def provide() -> Iterable[Family]:
        depths = Counter({"max": max((len(c.items) for c in hub.clients), default=0)})
        out = [
            gauge("burstbus_sse_clients", "Connected server-sent-events clients.", [({}, len(hub.clients))]),
            counter("burstbus_sse_connections_total", "SSE connections accepted.", [({}, hub.connections_total)]),
            counter("burstbus_sse_dropped_total", "SSE clients closed because their queue overflowed.",
                    [({}, hub.dropped_total)]),
            counter("burstbus_sse_events_total", "Log events the SSE follower fanned out.", [({}, hub.events_total)]),
            gauge("burstbus_sse_queue_depth_max", "Longest client queue (events waiting to be written).",
                  [({}, depths["max"])]),
        ]  # fmt: skip
        if hub.position is not None:
            head = (await log.head()).seq
            out.append(gauge("burstbus_sse_lag_events", "Log events the SSE follower has not read yet.",
                             [({}, max(0, head - hub.position))]))  # fmt: skip
        return out

    return provide
