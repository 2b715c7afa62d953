"""The XMPP bridge's Prometheus figures: session, rooms, commands, delivered notices, lag."""

from __future__ import annotations

from typing import Any

from burstbus.bridges.xmpp.node import XmppNode
from burstbus.metrics import Family, MetricsProvider, counter, gauge


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
                  [({}, await notifier.follower.lag())]),  # fmt: skip
        ]
        return out

    return provide
