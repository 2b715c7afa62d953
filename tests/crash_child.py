"""A process that appends from many tasks at once and prints each append the log confirmed.

Used by test_crash.py, which SIGKILLs it mid-stream. Each confirmed append is printed as
``seq id`` and flushed *after* ``append`` returned, so every printed line is a promise the
log made: it must hold after the kill.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from burstbus.config import load_config
from burstbus.events import Event
from burstbus.service import Core, build_service
from tests.packets import voevent


async def appender(core: Core, worker: int) -> None:
    n = 0
    while True:
        n += 1
        if n % 3:
            raw = voevent(f"ivo://crash.example/SWIFT#BAT_{worker}_{n}", params={"TrigID": str(worker * 1000 + n // 6)},
                          ra=(worker * 7.3 + n) % 360, dec=((n * 3.1) % 170) - 85)
            result = await core.ingest.submit(raw, via="local", peer=f"worker{worker}")
            print(f"{result.seq} voevent {result.ivorn}", flush=True)
        else:
            event = Event("process.status", {"process": f"p{worker}", "burst_id": f"b{n % 4}", "obs_id": "1",
                                             "pass_id": "1", "pipeline": "x", "status": "running" if n % 2 else "complete"})
            [where] = await core.log.append([event])
            print(f"{where.seq} event {event.id}", flush=True)


async def main(data_dir: Path) -> None:
    # free ephemeral ports: the suite may run beside a real instance on the default ones
    config = load_config(environ={}, overrides={"data": {"dir": str(data_dir)}, "vtp": {"receive_port": 0, "broadcast_port": 0}, "nats": {"enabled": False}, "http": {"enabled": False}})
    core = await Core.open(config)
    service = build_service(core)
    service.start()
    await asyncio.gather(*[appender(core, w) for w in range(40)])


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
