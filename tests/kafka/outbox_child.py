"""A process running one Kafka outbox over a data directory, for test_outbound.py to SIGKILL.

``python tests/kafka/outbox_child.py DATA_DIR BOOTSTRAP TOPIC``. Before each write of
checkpoint and floors — the batch's delivery reports are all in, nothing is stored yet — it
prints ``delivered`` and waits for a line on stdin, so the test can SIGKILL it exactly in the
window where a restart would publish the batch again if nothing read the topic first. Once
stdin is closed it runs freely.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from burstbus.bridges.kafka.connection import KafkaUpstream, producer_config
from burstbus.bridges.kafka.outbound import KafkaOutbox
from burstbus.bridges.kafka.outbound_config import KafkaOutput
from burstbus.bridges.kafka.outbound_rule import own_prefixes
from burstbus.state import StateStore
from burstbus.store.sqlite import SQLiteEventLog


async def main(data_dir: Path, bootstrap: str, topic: str) -> None:
    log = await SQLiteEventLog.open(data_dir / "log.sqlite", poll_interval=0.05)
    state = await StateStore.open(data_dir / "state.sqlite")
    transaction = state.transaction

    async def announced(fn: Callable[[Any], Any]) -> Any:
        print("delivered", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        return await transaction(fn)

    state.transaction = announced  # type: ignore[method-assign]
    output = KafkaOutput(topic=topic, upstream="local", start="beginning", batch_size=3)
    outbox = KafkaOutbox(log, state, output, producer_config(KafkaUpstream(name="local", bootstrap_servers=bootstrap)),
                         own_prefixes((), ("ivo://org.svom/fsc",)), retry_delay=0.05, max_retry_delay=0.5, scan_timeout=10)
    await outbox.run()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
