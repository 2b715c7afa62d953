"""The Slack outbox's Prometheus figures: posts, refusals, back-off waits, lag."""

from __future__ import annotations

from typing import Any

from burstbus.bridges.slack.outbox import SlackOutbox
from burstbus.metrics import Family, MetricsProvider, counter, gauge


def slack_metrics(outbox: SlackOutbox, log: Any) -> MetricsProvider:
    """Posts, refusals, back-off waits and the outbox's lag."""

    async def provide() -> list[Family]:
        return [
            gauge("burstbus_slack_connected", "1 while Slack accepts the token and posts.", [({}, int(outbox.connected))]),
            counter("burstbus_slack_out_total", "Messages posted to Slack.", [({}, outbox.posted_total)]),
            counter("burstbus_slack_out_failures_total", "Messages not posted to a channel: refused by Slack, or unconfirmed after an interrupted post (not retried).", [({}, outbox.failed_total)]),
            counter("burstbus_slack_retry_waits_total", "Back-off waits while Slack could not take a message.",
                    [({}, outbox.retry_waits)]),
            gauge("burstbus_slack_out_lag_events", "Accepted notices not yet posted to Slack.",
                  [({}, await outbox.follower.lag())]),  # fmt: skip
        ]

    return provide
