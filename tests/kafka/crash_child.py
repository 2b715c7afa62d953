"""``burstbus run`` reading one Kafka topic, for test_crash.py, which SIGKILLs it mid-stream.

The whole service (``build_service``: the Kafka component, the burst identifier, projections),
with every port on loopback at a free port and NATS/HTTP off, reading ``TOPIC`` from the broker
at ``BOOTSTRAP`` from the beginning (first start) or its stored positions.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from burstbus.config import load_config
from burstbus.service import Core, build_service


async def main(data_dir: Path, bootstrap: str, topic: str) -> None:
    upstream = {"name": "crash", "bootstrap_servers": bootstrap, "topics": [topic], "heartbeat": "", "start": "earliest"}
    config = load_config(environ={}, overrides={
        "data": {"dir": str(data_dir)}, "vtp": {"receive_port": 0, "broadcast_port": 0},
        "nats": {"enabled": False}, "http": {"enabled": False},
        "kafka": {"upstreams": [upstream], "batch_size": 100, "retry_delay": 0.1},
    })
    core = await Core.open(config)
    service = build_service(core)
    service.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
