"""XMPP notification latency: from a VTP submission to the BA room and to the on-duty page.

In one run, on one real Prosody on loopback (tests/xmpp/harness.py: STARTTLS, the same
modules as the tests):

* **reference**: the raw slixmpp message round trip on that server — client A sends, client B
  receives — as a direct message and through a room, paced at each rate;
* **burstbus**, as its own process (``--serve``: the service with VTP and the XMPP bridge,
  ``synchronous=FULL``), a BA's slixmpp client in the room: time from an author starting to
  submit a notice over VTP (``publish``: connect, send, ACK) to the room summary and to the
  direct page arriving at the BA's client, at 1 and 50 notices/s.

Latencies are matched by burst id; p50/p99 in milliseconds. Everything the path includes is
in the figure: VTP receive, schema check, durable append, burst identification, template
rendering, stanza send, the server's routing and TLS both ways.

    python bench/xmpp.py [--slow 30] [--fast 500] [--reference 200]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ is first on the path, and bench/nats.py would shadow the nats package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))  # the Prosody harness and packets live in tests/

from burstbus.broker.client import publish  # noqa: E402
from tests.packets import voevent  # noqa: E402
from tests.xmpp.harness import MUC, PASSWORD, Prosody, User, configure_room  # noqa: E402

ROOM = f"bench@{MUC}"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


# -- burstbus as a child process ------------------------------------------------------------


async def serve(config_path: Path) -> None:
    """``--serve``: burstbus with VTP and XMPP, as ``burstbus run`` builds it."""
    from burstbus.broker.node import VTPNode
    from burstbus.config import load_config
    from burstbus.service import Core, build_service

    config = load_config(config_path, environ={})
    core = await Core.open(config)
    await core.ingest.warm_up()
    service = build_service(core)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    service.start()
    vtp = service.part(VTPNode)
    assert vtp is not None
    await vtp.receiver_ready.wait()
    assert vtp.receiver is not None
    print(f"READY {vtp.receiver.port}", flush=True)
    await stop.wait()
    service.stop()
    await service.wait()
    await core.close()


def write_config(path: Path, prosody: Prosody, data: Path) -> None:
    path.write_text(f"""
[data]
dir = "{data}"
[log]
synchronous = "FULL"
[vtp]
receive_port = 0
broadcast = false
test_interval = 0
[nats]
enabled = false
[http]
enabled = false
public_url = "https://fsc.example/burstbus"
[xmpp]
enabled = true
jid = "burstbus@localhost"
password = "{PASSWORD}"
host = "127.0.0.1"
port = {prosody.port}
ca_file = "{prosody.ca_file}"
on_duty = ["alice@localhost"]
[[xmpp.rooms]]
jid = "{ROOM}"
""")


async def start_burstbus(home: Path, prosody: Prosody) -> tuple[subprocess.Popen[bytes], int]:
    config = home / "burstbus.toml"
    write_config(config, prosody, home / "data")
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(config)], stdout=subprocess.PIPE,
                            stderr=open(home / "burstbus.log", "wb"), cwd=home)
    assert proc.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
    if not line.startswith(b"READY"):
        proc.kill()
        raise RuntimeError(f"burstbus did not start: {(home / 'burstbus.log').read_text()[-2000:]}")
    return proc, int(line.split()[1])


# -- measurements ----------------------------------------------------------------------------


class Arrivals:
    """Arrival times of messages at one client, by a token in the body."""

    def __init__(self, client: User):
        self.times: dict[tuple[str, str], float] = {}
        client.add_event_handler("message", self._on)
        client.add_event_handler("groupchat_message", self._on)

    def _on(self, msg: Any) -> None:
        now = time.perf_counter()
        kind = "room" if msg["type"] == "groupchat" else "dm"
        if kind == "room" and msg.xml.find("{urn:xmpp:delay}delay") is not None:
            return
        for word in str(msg["body"]).replace(":", " ").split():
            if word.startswith("bb"):
                self.times.setdefault((kind, word), now)


async def paced(n: int, rate: float, send: Any) -> dict[str, float]:
    """Call ``send(token)`` n times at ``rate`` per second; the start time of each."""
    started: dict[str, float] = {}
    tasks = []
    t0 = time.perf_counter()
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        token = f"bb{uuid.uuid4().hex[:10]}"
        started[token] = time.perf_counter()
        tasks.append(asyncio.ensure_future(send(token)))
    await asyncio.gather(*tasks)
    return started


async def collect(arrivals: Arrivals, kind: str, started: dict[str, float], timeout: float = 60.0) -> list[float]:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and not all((kind, t) in arrivals.times for t in started):
        await asyncio.sleep(0.05)
    return [(arrivals.times[(kind, t)] - s) * 1000 for t, s in started.items() if (kind, t) in arrivals.times]


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="burstbus-bench-xmpp-"))
    prosody = Prosody(home / "prosody")
    prosody.prepare()
    for user in ("burstbus", "alice", "bob", "owner"):
        prosody.register(user)
    rows: list[tuple[str, str, int, int, float, float]] = []
    proc: subprocess.Popen[bytes] | None = None
    users: list[User] = []
    try:
        await prosody.start()
        owner = await User("owner@localhost/setup", prosody).login()
        users.append(owner)
        await configure_room(owner, ROOM, members_only=True, whois_anyone=True,
                             members=["burstbus@localhost", "alice@localhost", "bob@localhost"])
        alice = await User("alice@localhost/phone", prosody).login()
        bob = await User("bob@localhost/phone", prosody).login()
        users += [alice, bob]
        await alice.join(ROOM, "alice")
        await bob.join(ROOM, "bob")
        arrivals = Arrivals(alice)

        # reference: raw slixmpp, bob → alice, direct and through the room
        for rate in (1.0, 50.0):
            n = args.reference_slow if rate == 1.0 else args.reference

            async def direct(token: str) -> None:
                bob.send_message(mto="alice@localhost", mbody=token, mtype="chat")

            async def room(token: str) -> None:
                bob.send_message(mto=ROOM, mbody=token, mtype="groupchat")

            for kind, send in (("dm", direct), ("room", room)):
                started = await paced(n, rate, send)
                got = await collect(arrivals, kind, started)
                label = "slixmpp direct message" if kind == "dm" else "slixmpp room message"
                rows.append((f"reference: {label}", f"{rate:g}/s", n, len(got), percentile(got, 50), percentile(got, 99)))

        proc, port = await start_burstbus(home, prosody)
        # wait until the bot is in the room (its presence reaches alice)
        muc = alice.plugin["xep_0045"]
        deadline = time.perf_counter() + 60
        while "burstbus" not in muc.get_roster(ROOM) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)

        async def notice(token: str) -> None:
            raw = voevent(f"ivo://org.svom/fsc#{token}", params={"Burst_Id": token, "Packet_Type": "202"})
            answer = await publish("127.0.0.1", port, raw)
            if not answer.acknowledged:
                raise RuntimeError(answer.reason)

        await paced(3, 10.0, notice)  # warm-up (first schema check, first templates)
        for rate, n in ((1.0, args.slow), (50.0, args.fast)):
            started = await paced(n, rate, notice)
            for kind, label in (("room", "burstbus: VTP submit → room summary"), ("dm", "burstbus: VTP submit → on-duty page")):
                got = await collect(arrivals, kind, started)
                rows.append((label, f"{rate:g}/s", n, len(got), percentile(got, 50), percentile(got, 99)))
    finally:
        for user in users:
            try:
                await asyncio.wait_for(user.disconnect(wait=1.0), 5)
            except Exception:
                pass
        if proc is not None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        prosody.stop()

    print()
    print(f"{'path':<42} {'rate':>6} {'sent':>5} {'got':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for label, rate, n, got, p50, p99 in rows:
        print(f"{label:<42} {rate:>6} {n:>5} {got:>5} {p50:>8.1f} {p99:>8.1f}")
    print(f"\n(work files in {home})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(serve(Path(sys.argv[2])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=30, help="notices at 1/s (default 30)")
    parser.add_argument("--fast", type=int, default=500, help="notices at 50/s (default 500)")
    parser.add_argument("--reference", type=int, default=200, help="raw messages at 50/s (default 200)")
    parser.add_argument("--reference-slow", type=int, default=20, help="raw messages at 1/s (default 20)")
    asyncio.run(main(parser.parse_args()))
