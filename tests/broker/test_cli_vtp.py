"""The VTP commands as an operator uses them, against ``burstbus run`` in its own process:
``publish``, ``subscribe``, a Comet subscriber across a SIGKILL and restart of burstbus."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from burstbus.broker.client import event_filename
from tests.broker.harness import BIN, DEADLINE, Processes, comet_filename, free_port, unique_ivorn
from tests.packets import voevent

SVOM = "//Param[@name='Mission' and @value='SVOM']"


def until(condition: Callable[[], Any], what: str, timeout: float = DEADLINE, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "burstbus.cli", *args], capture_output=True, text=True,
                          timeout=DEADLINE, stdin=subprocess.DEVNULL, env=env)


def start_burstbus(procs: Processes, data: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    start = log.stat().st_size if log.exists() else 0
    proc = subprocess.Popen([sys.executable, "-m", "burstbus.cli", "--data-dir", str(data), "run"], cwd=data.parent,
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    procs.procs.append(proc)

    def listening() -> bool:
        text = log.read_bytes()[start:].decode(errors="replace")
        assert proc.poll() is None, text
        return "VTP receiver listening" in text and "VTP broadcaster listening" in text

    until(listening, "burstbus to listen")
    return proc


def saved(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith("-lock"))


def test_publish_subscribe_and_a_comet_subscriber_across_a_sigkill(tmp_path: Path, procs: Processes) -> None:
    data = tmp_path / "data"
    receive, broadcast = free_port(), free_port()
    env = {**os.environ, "BURSTBUS_VTP_RECEIVE_PORT": str(receive), "BURSTBUS_VTP_BROADCAST_PORT": str(broadcast),
           "BURSTBUS_VTP_AUTHENTICATE_WAIT": "30",
           # VTP only: the NATS server and HTTP API would take their fixed default ports, and the
           # SIGKILL below would leave the embedded nats-server running
           "BURSTBUS_NATS_ENABLED": "false", "BURSTBUS_HTTP_ENABLED": "false"}
    log = tmp_path / "burstbus.log"
    burstbus = start_burstbus(procs, data, env, log)

    comet_home = tmp_path / "comet"
    (comet_home / "saved").mkdir(parents=True)
    procs.start([str(BIN / "twistd"), "-n", "--pidfile=", "-l", str(comet_home / "twistd.log"), "comet",
                 f"--remote=127.0.0.1:{broadcast}", "--local-ivo=ivo://test/comet-sub", f"--eventdb={comet_home}",
                 "--save-event", f"--save-event-directory={comet_home / 'saved'}"], cwd=comet_home)
    ours = tmp_path / "ours"
    ours.mkdir()
    procs.start([sys.executable, "-m", "burstbus.cli", "subscribe", f"127.0.0.1:{broadcast}", "--filter", SVOM,
                 "--save", str(ours)], cwd=tmp_path, log=tmp_path / "subscribe.log")
    comet_dir = comet_home / "saved"

    def probe_until_both_hear(tag: str) -> None:
        """Publish probes until both subscribers got one: then both are connected and filtering."""
        def heard() -> bool:
            ivorn = unique_ivorn(f"probe-{tag}")
            path = tmp_path / "probe.xml"
            path.write_bytes(voevent(ivorn, role="test", params={"Mission": "SVOM"}))
            assert cli("publish", "--to", f"127.0.0.1:{receive}", str(path)).returncode == 0
            try:
                until(lambda: event_filename(ivorn) in saved(ours) and comet_filename(ivorn) in saved(comet_dir),
                      "the probe", timeout=2)
            except AssertionError:
                return False
            return True

        until(heard, "both subscribers to be connected", every=0)

    probe_until_both_hear("start")

    files = {}
    for name, mission in (("svom", "SVOM"), ("swift", "Swift")):
        ivorn = unique_ivorn(name)
        files[name] = (ivorn, tmp_path / f"{name}.xml")
        files[name][1].write_bytes(voevent(ivorn, params={"Mission": mission}))
    bad = tmp_path / "bad.xml"
    bad.write_bytes(voevent("ivo://test.example/no-local-id"))
    result = cli("publish", "--to", f"127.0.0.1:{receive}", str(files["svom"][1]), str(bad), str(files["swift"][1]))
    assert result.returncode == 1
    assert f"ACK  {files['svom'][1]}" in result.stdout and f"ACK  {files['swift'][1]}" in result.stdout
    assert f"NAK  {bad}: Event rejected (ivorn): IVORN has no local id" in result.stdout

    svom_ivorn, swift_ivorn = files["svom"][0], files["swift"][0]
    until(lambda: comet_filename(swift_ivorn) in saved(comet_dir), "the packets at the Comet subscriber")
    until(lambda: event_filename(svom_ivorn) in saved(ours), "the SVOM packet at burstbus subscribe")
    assert event_filename(swift_ivorn) not in saved(ours)  # filtered out
    assert (ours / event_filename(svom_ivorn)).read_bytes() == files["svom"][1].read_bytes()

    # SIGKILL: whatever was ACKed is in the log
    os.kill(burstbus.pid, signal.SIGKILL)
    burstbus.wait()
    logged = cli("--data-dir", str(data), "log", "--type", "voevent.accepted", env=env).stdout
    assert svom_ivorn in logged and swift_ivorn in logged

    # restart on the same ports: both subscribers reconnect by themselves and get what follows
    start_burstbus(procs, data, env, log)
    probe_until_both_hear("restart")
    after = unique_ivorn("after")
    (tmp_path / "after.xml").write_bytes(voevent(after, params={"Mission": "SVOM"}))
    assert cli("publish", "--to", f"127.0.0.1:{receive}", str(tmp_path / "after.xml")).returncode == 0
    until(lambda: comet_filename(after) in saved(comet_dir) and event_filename(after) in saved(ours), "the packet after the restart")
    # nothing arrived twice (Comet pads a repeated name with "_")
    assert not [name for name in saved(comet_dir) if name.endswith("_")]
