"""The NATS bridge's health and Prometheus figures: connection, inbound outcomes, outbox lag."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from burstbus.bridges.nats.node import NatsNode
from burstbus.metrics import Family, MetricsProvider, counter, gauge, latest


def nats_metrics(node: NatsNode, log: Any) -> MetricsProvider:
    """Connection state, inbound requests by outcome, outbound published/failures and lag."""

    async def provide() -> list[Family]:
        out = [gauge("burstbus_nats_connected", "1 while connected with the inbound subscriptions live.",
                     [({}, int(node.connected.is_set()))])]  # fmt: skip
        inbound = node.inbound
        if inbound is not None:
            out.append(counter("burstbus_nats_in_total", "Inbound NATS requests, by subject kind and outcome.",
                               [({"kind": k, "outcome": o}, n) for (k, o), n in sorted(inbound.counts.items())]))  # fmt: skip
        outbound = node.outbound
        if outbound is not None:
            out.append(counter("burstbus_nats_out_total", "Messages published to NATS (and confirmed).",
                               [({}, outbound.published_total)]))  # fmt: skip
            out.append(counter("burstbus_nats_out_duplicates_total", "Published messages JetStream reported as duplicates.",
                               [({}, outbound.duplicates_total)]))  # fmt: skip
            out.append(counter("burstbus_nats_out_failures_total", "Outbound batches that failed and were retried.",
                               [({}, outbound.failures)]))  # fmt: skip
            head = (await log.head()).seq
            out.append(gauge("burstbus_nats_out_lag_events", "Log events not yet published to NATS.",
                             [({}, max(0, head - outbound.position))]))  # fmt: skip
        return out

    return provide


def nats_health(node: NatsNode) -> Callable[[], dict[str, Any]]:
    """What the NATS component adds to its supervised health: down while not connected."""

    def probe() -> dict[str, Any]:
        state: dict[str, Any] = {"connected": node.connected.is_set()}
        state["up"] = state["connected"]
        if node.outbound is not None:
            state["published"] = node.outbound.published_total
            state["position"] = node.outbound.position
            state["last_error"] = node.outbound.last_error
            state["last_activity"] = latest(state.get("last_activity"), node.outbound.last_published_at)
        if node.inbound is not None:
            state["inbound"] = {f"{k}.{o}": n for (k, o), n in sorted(node.inbound.counts.items())}
            state["last_activity"] = latest(state.get("last_activity"), node.inbound.last_received_at)
        return state

    return probe
