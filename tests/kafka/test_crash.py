"""Acceptance (b): burstbus SIGKILLed 10 times while 5,000 messages are produced to its topic —
every message is in the log exactly once, none lost, the chain intact.

The messages are VOEvents (one IVORN each), JSON notices, and refusals of both kinds, so every
kind of derived id is exercised: a crash between the durable append and the position write
makes the next start read the batch again, and that re-read must append nothing."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from burstbus.config import load_config
from burstbus.events import decode_json
from burstbus.service import Core
from tests.kafka.tansu import TansuBroker
from tests.packets import voevent
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
TOPIC = "gcn.notices.svom.voevent.eclairs"
TOTAL = 5000
KILLS = 10


def message(i: int) -> bytes:
    if i % 100 == 7:
        return f"not xml {i}".encode()
    if i % 250 == 11:
        return f"{{bad json {i}".encode()
    if i % 50 == 3:
        return json.dumps({"superevent_id": "S261202ab", "alert_type": "UPDATE", "time_created": f"2026-12-02T00:00:{i % 60:02d}Z",
                           "event": {"time": "2026-12-02T00:00:00Z", "far": 1e-9, "significant": True, "n": i}}).encode()
    return voevent(f"ivo://org.svom/fsc#sb2612{i // 5:05d}_{i}", params={"Burst_Id": f"sb2612{i // 5:05d}"})


def offsets_in_log(log_path: Path) -> Counter[int]:
    """Kafka offset → number of log events recording that message (read-only, beside the writer)."""
    if not log_path.exists():
        return Counter()
    conn = sqlite3.connect(f"file:{log_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT data FROM events WHERE type IN "
                            "('voevent.accepted', 'voevent.rejected', 'notice.accepted', 'notice.rejected')").fetchall()
    except sqlite3.OperationalError:
        return Counter()
    finally:
        conn.close()
    return Counter(decode_json(d)["kafka"]["offset"] for (d,) in rows)


def start_child(data_dir: Path, broker: TansuBroker) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-m", "tests.kafka.crash_child", str(data_dir), broker.bootstrap, TOPIC],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "started"
    return child


async def test_sigkill_ten_times_while_5000_messages_arrive_every_message_exactly_once(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics([TOPIC])
    data_dir = tmp_path / "data"
    log_path = data_dir / "log.sqlite"
    # Production goes in step with the kills: chunk k is released when the k-th child has started,
    # so every kill lands before the stream is over, however slow the machine (no timed assertion).
    chunk = -(-TOTAL // (KILLS + 1))
    released = [threading.Event() for _ in range(KILLS + 1)]
    produced_upto = [0]
    produced = threading.Event()
    stop = threading.Event()

    def produce() -> None:
        producer = tansu.producer()
        for i in range(TOTAL):
            if i % chunk == 0:
                while not released[i // chunk].wait(0.5):
                    if stop.is_set():
                        return
            while True:
                try:
                    producer.produce(TOPIC, message(i))
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 50 == 49:
                producer.flush(60)
                produced_upto[0] = i + 1
                threading.Event().wait(0.1)  # ~ 500 messages a second: the kills land mid-chunk
        assert producer.flush(120) == 0
        produced_upto[0] = TOTAL
        produced.set()

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    rng = random.Random(12)
    children: list[subprocess.Popen[str]] = []
    in_flight = 0
    try:
        for k in range(KILLS):
            before = len(offsets_in_log(log_path))
            child = start_child(data_dir, tansu)
            children.append(child)
            released[k].set()
            await wait_for(lambda b=before: len(offsets_in_log(log_path)) > b, "the child taking messages", timeout=120)
            await asyncio.sleep(rng.uniform(0.05, 0.8))
            in_flight += len(offsets_in_log(log_path)) < produced_upto[0]  # produced, not yet in the log
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
            assert not produced.is_set()  # by the gating: the stream was not over at this kill
        released[KILLS].set()
        await wait_for(produced.is_set, "every message produced", timeout=300)
        child = start_child(data_dir, tansu)
        children.append(child)
        await wait_for(lambda: len(offsets_in_log(log_path)) >= TOTAL, "every message in the log", timeout=300)
        child.send_signal(signal.SIGTERM)
        child.wait(60)
    finally:
        stop.set()
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(30)
        thread.join(60)

    print(f"{in_flight} of {KILLS} kills landed with messages produced and not yet in the log")
    counts = offsets_in_log(log_path)
    assert sorted(counts) == list(range(TOTAL))  # none lost
    assert set(counts.values()) == {1}  # none twice
    config = load_config(environ={}, overrides={"data": {"dir": str(data_dir)}, "nats": {"enabled": False}})
    core = await Core.open(config)
    try:
        verification = await core.log.verify()
        assert verification.ok, verification
        kinds = Counter(r.type for r in await core.log.read(0) if "kafka" in r.data)
        assert kinds == {"voevent.accepted": 4830, "voevent.rejected": 50, "notice.accepted": 100, "notice.rejected": 20}
    finally:
        await core.close()
