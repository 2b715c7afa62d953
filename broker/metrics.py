"""The VTP parts' health and Prometheus figures: receiver outcomes, subscribers, upstreams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from burstbus.broker.node import VTPNode
from burstbus.catalogue import VOEVENT_ACCEPTED as ACCEPTED
from burstbus.metrics import Family, MetricsProvider, counter, gauge, latest
from burstbus.store.lag import consumer_lag


def vtp_metrics(node: VTPNode, log: Any, part: str) -> MetricsProvider:
    """One part's figures: receiver outcomes (``vtp-receiver``), subscribers and lag
    (``vtp-broadcaster``), upstream connections (``vtp-upstreams``)."""

    async def provide() -> list[Family]:
        out: list[Family] = []
        receiver = node.receiver if part == "vtp-receiver" else None
        if receiver is not None:
            stats = receiver.stats
            out.append(counter("burstbus_vtp_author_connections_total", "VTP author connections accepted.",
                               [({}, stats.connections)]))  # fmt: skip
            out.append(counter("burstbus_vtp_author_refused_connections_total",
                               "VTP author connections refused (not in vtp.author_allow).", [({}, stats.refused_connections)]))  # fmt: skip
            out.append(counter("burstbus_vtp_received_total", "VOEvent frames from VTP authors, by outcome.",
                               [({"outcome": k}, n) for k, n in sorted(stats.outcomes.items())]))  # fmt: skip
        broadcaster = node.broadcaster if part == "vtp-broadcaster" else None
        if broadcaster is not None:
            subscribers = broadcaster.subscribers()
            out.append(gauge("burstbus_vtp_subscribers", "Connected VTP subscribers.", [({}, len(subscribers))]))
            out.append(counter("burstbus_vtp_broadcast_events_total", "Accepted VOEvents taken from the log for broadcast.",
                               [({}, broadcaster.broadcast)]))  # fmt: skip
            per = [(s, {"peer": s.peer, "ivo": s.ivo or ""}) for s in subscribers]
            out.append(gauge("burstbus_vtp_subscriber_sent", "Events sent to this subscriber on its current connection.",
                             [(labels, s.sent) for s, labels in per]))  # fmt: skip
            out.append(gauge("burstbus_vtp_subscriber_acked", "Events this subscriber acknowledged (current connection).",
                             [(labels, s.acked) for s, labels in per]))  # fmt: skip
            out.append(gauge("burstbus_vtp_subscriber_outstanding", "Events sent and not yet acknowledged.",
                             [(labels, s.outstanding) for s, labels in per]))  # fmt: skip
            out.append(gauge("burstbus_vtp_subscriber_filtered_out", "Events this subscriber's filters held back.",
                             [(labels, s.filtered_out) for s, labels in per]))  # fmt: skip
            if broadcaster.position is not None:
                head = (await log.head()).seq
                lag = await consumer_lag(log, broadcaster.position, head, (ACCEPTED,))
                out.append(gauge("burstbus_vtp_broadcaster_lag_events",
                                 "Accepted VOEvents in the log not yet handed to subscribers.", [({}, lag)]))  # fmt: skip
        upstreams = node.upstreams if part == "vtp-upstreams" else None
        if upstreams is not None:
            stats_list = upstreams.stats()
            out.append(gauge("burstbus_vtp_upstream_connected", "1 while connected to this upstream broker.",
                             [({"peer": u.peer}, int(u.connected)) for u in stats_list]))  # fmt: skip
            out.append(counter("burstbus_vtp_upstream_connects_total", "Connections made to this upstream broker.",
                               [({"peer": u.peer}, u.connects) for u in stats_list]))  # fmt: skip
            out.append(counter("burstbus_vtp_upstream_received_total", "VOEvents from this upstream broker, by outcome.",
                               [({"peer": u.peer, "outcome": k}, n) for u in stats_list for k, n in sorted(u.outcomes.items())]))  # fmt: skip
        return out

    return provide


def vtp_health(node: VTPNode, part: str) -> Callable[[], dict[str, Any]]:
    """What one VTP part adds to its supervised health: counts and last activity."""

    def probe() -> dict[str, Any]:
        state: dict[str, Any] = {}
        if part == "vtp-broadcaster" and node.broadcaster is not None:
            subscribers = node.broadcaster.subscribers()
            state["subscribers"] = len(subscribers)
            state["follower"] = node.broadcaster.follower.health()  # retrying while the log does not answer
            if node.catch_up is not None:
                state["catch_up"] = node.catch_up.health()
            state["last_activity"] = latest(
                state.get("last_activity"), *(s.last_sent_at for s in subscribers), *(s.last_ack_at for s in subscribers)
            )
        elif part == "vtp-receiver" and node.receiver is not None:
            stats = node.receiver.stats
            state["connections"] = stats.connections
            state["received"] = dict(stats.outcomes)
            state["last_activity"] = latest(state.get("last_activity"), stats.last_received_at)
        elif part == "vtp-upstreams" and node.upstreams is not None:
            stats_list = node.upstreams.stats()
            state["upstreams"] = {u.peer: {"connected": u.connected, "received": u.received,
                                           "last_received_at": u.last_received_at} for u in stats_list}  # fmt: skip
            state["last_activity"] = latest(state.get("last_activity"), *(u.last_received_at for u in stats_list))
        return state

    return probe
