"""Metrics providers and health probes for the transports: VTP, NATS, XMPP, Slack, the SSE hub.

Each reads counters its component already keeps (``broker/stats.py``, the NATS bridge's
``Inbound.counts`` / ``Outbound.published_total``, the hub's counters) — nothing here
touches the network. The node objects are passed in; attributes that are None (a part not
started yet, or restarting) are simply not reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from burstbus.bridges.http.metrics import Family, MetricsProvider, consumer_lag, counter, gauge

if TYPE_CHECKING:
    from burstbus.bridges.http.stream import EventHub
    from burstbus.bridges.nats.node import NatsNode
    from burstbus.bridges.slack.outbox import SlackOutbox
    from burstbus.bridges.xmpp.node import XmppNode
    from burstbus.broker.node import VTPNode

ACCEPTED = "voevent.accepted"


def _latest(*times: str | None) -> str | None:
    known = [t for t in times if t]
    return max(known) if known else None


def vtp_metrics(node: VTPNode, log: Any) -> MetricsProvider:
    """Receiver outcomes, broadcaster subscribers and lag, upstream connections."""

    async def provide() -> list[Family]:
        out: list[Family] = []
        receiver = node.receiver
        if receiver is not None:
            stats = receiver.stats
            out.append(counter("burstbus_vtp_author_connections_total", "VTP author connections accepted.",
                               [({}, stats.connections)]))  # fmt: skip
            out.append(counter("burstbus_vtp_author_refused_connections_total",
                               "VTP author connections refused (not in vtp.author_allow).", [({}, stats.refused_connections)]))  # fmt: skip
            out.append(counter("burstbus_vtp_received_total", "VOEvent frames from VTP authors, by outcome.",
                               [({"outcome": k}, n) for k, n in sorted(stats.outcomes.items())]))  # fmt: skip
        broadcaster = node.broadcaster
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
        upstreams = node.upstreams
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


def vtp_health(node: VTPNode, part: str, base: Callable[[], Mapping[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The supervised component's health plus what VTP knows: counts and last activity."""

    def probe() -> dict[str, Any]:
        state = dict(base())
        if part == "vtp-broadcaster" and node.broadcaster is not None:
            subscribers = node.broadcaster.subscribers()
            state["subscribers"] = len(subscribers)
            state["last_activity"] = _latest(
                state.get("last_activity"), *(s.last_sent_at for s in subscribers), *(s.last_ack_at for s in subscribers)
            )
        elif part == "vtp-receiver" and node.receiver is not None:
            stats = node.receiver.stats
            state["connections"] = stats.connections
            state["received"] = dict(stats.outcomes)
            state["last_activity"] = _latest(state.get("last_activity"), stats.last_received_at)
        elif part == "vtp-upstreams" and node.upstreams is not None:
            stats_list = node.upstreams.stats()
            state["upstreams"] = {u.peer: {"connected": u.connected, "received": u.received,
                                           "last_received_at": u.last_received_at} for u in stats_list}  # fmt: skip
            state["last_activity"] = _latest(state.get("last_activity"), *(u.last_received_at for u in stats_list))
        return state

    return probe


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


def nats_health(node: NatsNode, base: Callable[[], Mapping[str, Any]]) -> Callable[[], dict[str, Any]]:
    def probe() -> dict[str, Any]:
        state = dict(base())
        state["connected"] = node.connected.is_set()
        state["up"] = bool(state.get("up")) and state["connected"]
        if node.outbound is not None:
            state["published"] = node.outbound.published_total
            state["position"] = node.outbound.position
            state["last_error"] = node.outbound.last_error
            state["last_activity"] = _latest(state.get("last_activity"), node.outbound.last_published_at)
        if node.inbound is not None:
            state["inbound"] = {f"{k}.{o}": n for (k, o), n in sorted(node.inbound.counts.items())}
            state["last_activity"] = _latest(state.get("last_activity"), node.inbound.last_received_at)
        return state

    return probe


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


def xmpp_metrics(node: XmppNode, log: Any) -> MetricsProvider:
    """Connection state, rooms joined, messages delivered and refused, commands, outbox lag."""

    async def provide() -> list[Family]:
        connection, notifier = node.connection, node.notifier
        rooms = list(connection.rooms.by_jid.values())
        out = [
            gauge("burstbus_xmpp_connected", "1 while the bot's XMPP session is up.", [({}, int(connection.up.is_set()))]),
            gauge("burstbus_xmpp_rooms_joined", "Rooms the bot is in, of those configured.",
                  [({"state": "joined"}, sum(1 for r in rooms if r.joined)), ({"state": "configured"}, len(rooms))]),  # fmt: skip
            counter("burstbus_xmpp_sessions_total", "XMPP sessions started (resumed ones not counted).", [({}, connection.connects)]),
            counter("burstbus_xmpp_resumed_total", "XEP-0198 resumptions after a cut.", [({}, connection.resumes)]),
            counter("burstbus_xmpp_commands_total", "Commands handed to the bot.", [({}, connection.commands_total)]),
            counter("burstbus_xmpp_ignored_total", "Messages not taken as commands, by reason.",
                    [({"reason": k}, n) for k, n in sorted(connection.dropped.items())]),  # fmt: skip
            counter("burstbus_xmpp_out_total", "Notice messages delivered (server-acknowledged).", [({}, notifier.delivered_total)]),
            counter("burstbus_xmpp_out_failures_total", "Notification batches that failed and were re-sent.", [({}, notifier.failures)]),
            counter("burstbus_xmpp_out_skipped_total", "Room summaries skipped: the bot was not in the room.", [({}, notifier.skipped_total)]),
            gauge("burstbus_xmpp_out_lag_events", "Accepted notices not yet delivered over XMPP.",
                  [({}, await consumer_lag(log, notifier.position, (await log.head()).seq, [ACCEPTED]))]),  # fmt: skip
        ]
        return out

    return provide


def slack_metrics(outbox: SlackOutbox, log: Any) -> MetricsProvider:
    """Posts, refusals and the outbox's lag."""

    async def provide() -> list[Family]:
        return [
            gauge("burstbus_slack_connected", "1 while Slack accepts the token and posts.", [({}, int(outbox.connected))]),
            counter("burstbus_slack_out_total", "Messages posted to Slack.", [({}, outbox.posted_total)]),
            counter("burstbus_slack_out_failures_total", "Messages Slack refused for a channel (not retried).", [({}, outbox.failed_total)]),
            gauge("burstbus_slack_out_lag_events", "Accepted notices not yet posted to Slack.",
                  [({}, await consumer_lag(log, outbox.position, (await log.head()).seq, [ACCEPTED]))]),  # fmt: skip
        ]

    return provide
