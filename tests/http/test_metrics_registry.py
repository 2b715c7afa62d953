"""The metrics-provider registry: components' families in /metrics; a broken one is reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from burstbus.bridges.http.app import METRICS
from burstbus.metrics import Family, Histogram, counter, gauge, histogram
from tests.http.conftest import open_archive
from tests.http.test_post_and_ops import samples

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_providers_are_scraped_and_failures_reported(tmp_path: Path) -> None:
    archive = await open_archive(tmp_path, [])
    try:
        registry = archive.app[METRICS]
        latency = Histogram(bounds=(0.001, 0.01))
        for seconds in (0.0005, 0.005, 0.5):
            latency.observe(seconds)

        def xmpp() -> list[Family]:
            return [counter("burstbus_xmpp_out_total", "Messages sent.", [({"room": 'ba"room'}, 7)]),
                    gauge("burstbus_xmpp_connected", "1 while connected.", [({}, 1)]),
                    histogram("burstbus_xmpp_send_seconds", "Send latency.", [({}, latency)])]  # fmt: skip

        async def slack() -> list[Family]:
            raise ConnectionError("slack is down")

        async def stuck() -> list[Family]:
            await asyncio.sleep(3600)
            return []

        def bad_name() -> list[Family]:
            return [gauge("bad name", "x", [({}, 1)])]

        registry.update(xmpp=xmpp, slack=slack, stuck=stuck, bad=bad_name)
        archive.log.append_seconds = latency  # type: ignore[attr-defined]  # what the log may carry
        status, body, response = await archive.get("/metrics")
        assert status == 200
        got = samples(body.decode())
        assert got['burstbus_xmpp_out_total{room="ba\\"room"}'] == 7
        assert got["burstbus_xmpp_connected"] == 1
        assert got['burstbus_xmpp_send_seconds_bucket{le="0.001"}'] == 1
        assert got['burstbus_xmpp_send_seconds_bucket{le="0.01"}'] == 2
        assert got['burstbus_xmpp_send_seconds_bucket{le="+Inf"}'] == 3
        assert got["burstbus_xmpp_send_seconds_count"] == 3
        assert got['burstbus_log_append_seconds_bucket{le="+Inf"}'] == 3
        for name, up in (("xmpp", 1), ("slack", 0), ("stuck", 0), ("bad", 0), ("sse", 1)):
            assert got[f'burstbus_metrics_provider_up{{provider="{name}"}}'] == up, name
        assert got["burstbus_sse_clients"] == 0
        text = body.decode()
        assert text.count("# TYPE burstbus_xmpp_out_total counter") == 1
        assert "# TYPE burstbus_xmpp_send_seconds histogram" in text
    finally:
        await archive.close()
