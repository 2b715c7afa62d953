"""The burstbus command as an operator uses it: import, log, verify, rebuild, replay, run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.packets import SHARED_VOEVENTS, voevent

REPO = Path(__file__).resolve().parents[1]
#: Never the default ports: the suite may run beside a real instance.
EPHEMERAL_PORTS = {"BURSTBUS_VTP_RECEIVE_PORT": "0", "BURSTBUS_VTP_BROADCAST_PORT": "0", "BURSTBUS_NATS_EMBEDDED_PORT": "0",
                   "BURSTBUS_HTTP_PORT": "0"}


def burstbus(data_dir: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "burstbus.cli", "--data-dir", str(data_dir), *args],
        cwd=data_dir.parent, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def packets(tmp_path: Path) -> Path:
    folder = tmp_path / "packets"
    (folder / "nested").mkdir(parents=True)
    for i in range(5):
        (folder / f"good{i}.xml").write_bytes(voevent(f"ivo://cli.example/SWIFT#BAT_{i}", params={"TrigID": str(100 + i)}))
    (folder / "nested" / "followup.xml").write_bytes(
        voevent("ivo://cli.example/SWIFT#XRT_0", params={"TrigID": "100"}, cites=[("ivo://cli.example/SWIFT#BAT_0", "followup")])
    )
    (folder / "broken.xml").write_bytes(b"<VOEvent ivorn='ivo://x/y#1'")
    (folder / "bomb.xml").write_bytes(
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://x/y#2" role="test" version="2.0">&b;</voe:VOEvent>'
    )
    (folder / "notes.txt").write_text("not a packet: ignored in folders")
    with tarfile.open(tmp_path / "dump.tar.gz", "w:gz") as archive:
        extra = tmp_path / "extra.xml"
        extra.write_bytes(voevent("ivo://cli.example/SWIFT#BAT_tar", params={"TrigID": "900"}))
        archive.add(extra, arcname="cli.example/SWIFT/BAT_tar")
    return folder


def test_import_log_verify_rebuild_replay(tmp_path: Path, packets: Path) -> None:
    data = tmp_path / "data"
    first = burstbus(data, "import", str(packets), str(tmp_path / "dump.tar.gz"), check=True)
    assert "9 packets: 7 accepted, 0 duplicates (already in the log), 2 refused" in first.stdout
    assert "broken.xml" in first.stdout and "bomb.xml" in first.stdout
    assert "refused (doctype): 1" in first.stdout

    again = burstbus(data, "import", str(packets), str(tmp_path / "dump.tar.gz"), check=True)
    assert "9 packets: 0 accepted, 7 duplicates (already in the log), 2 refused" in again.stdout

    changed = tmp_path / "changed.xml"
    changed.write_bytes(voevent("ivo://cli.example/SWIFT#BAT_1", params={"TrigID": "101"}, ra=1.0))
    conflict = burstbus(data, "import", str(changed))
    assert "0 accepted" in conflict.stdout and "already accepted" in conflict.stdout
    assert conflict.returncode == 1 and "every packet was refused" in conflict.stderr  # not a silent success

    lines = burstbus(data, "log", check=True).stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types.count("voevent.accepted") == 7
    assert types.count("voevent.rejected") == 5  # 2 + 2 on re-import + the conflict
    assert types.count("burst.identified") == 7
    only = [json.loads(x) for x in burstbus(data, "log", "--type", "burst.identified", "--stream", "swift-100", check=True).stdout.splitlines()]
    assert {e["data"]["ivorn"] for e in only} == {"ivo://cli.example/SWIFT#BAT_0", "ivo://cli.example/SWIFT#XRT_0"}
    tail = [json.loads(x) for x in burstbus(data, "log", "--after", str(len(events) - 2), check=True).stdout.splitlines()]
    assert [e["seq"] for e in tail] == [len(events) - 1, len(events)]
    assert burstbus(data, "log", "--until", "2000-01-01T00:00:00Z", check=True).stdout == ""
    assert burstbus(data, "log", "--since", "not a time").returncode == 2

    verified = burstbus(data, "verify", check=True)
    assert f"ok: {len(events)} events" in verified.stdout

    before = sqlite3.connect(data / "projections.sqlite").execute("SELECT ivorn FROM voevent ORDER BY ivorn").fetchall()
    assert len(before) == 7
    assert "rebuilt voeventdb, processes, bursts" in burstbus(data, "rebuild", check=True).stdout
    after = sqlite3.connect(data / "projections.sqlite").execute("SELECT ivorn FROM voevent ORDER BY ivorn").fetchall()
    assert after == before
    unknown = burstbus(data, "rebuild", "nosuch")
    assert unknown.returncode == 2 and "unknown projection" in unknown.stderr

    cut = events[3]["recorded_at"]
    replay = burstbus(data, "replay", "--until", cut, "--out", str(tmp_path / "then.sqlite"), check=True)
    assert "state as of" in replay.stdout and "bursts:" in replay.stdout
    then = sqlite3.connect(tmp_path / "then.sqlite").execute("SELECT COUNT(*) FROM voevent").fetchone()[0]
    assert then <= 7

    # an edited event is caught, and named
    conn = sqlite3.connect(data / "log.sqlite")
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET data = replace(data, 'BAT_3', 'BAT_9') WHERE data LIKE '%BAT_3%' AND type = 'voevent.accepted'")
    seq = conn.execute("SELECT seq FROM events WHERE data LIKE '%BAT_9%' AND type = 'voevent.accepted'").fetchone()[0]
    conn.commit()
    conn.close()
    damaged = burstbus(data, "verify")
    assert damaged.returncode == 1
    assert f"DAMAGED at seq {seq}" in damaged.stdout


def test_bad_configuration_stops_the_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[log]\nsynchronous = "sometimes"\n')
    result = burstbus(tmp_path / "data", "--config", str(config), "verify")
    assert result.returncode == 2
    assert "log.synchronous" in result.stderr


def test_run_serves_until_sigterm_and_sigint(tmp_path: Path, packets: Path) -> None:
    data = tmp_path / "data"
    for signum in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen(
            [sys.executable, "-m", "burstbus.cli", "--data-dir", str(data), "run"],
            cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
            env={**os.environ, **EPHEMERAL_PORTS},
        )
        try:
            assert proc.stderr is not None
            http_url, running = None, False
            for line in proc.stderr:
                if "HTTP API on " in line:
                    http_url = line.split("HTTP API on ", 1)[1].strip()
                running = running or "burstbus running" in line
                if running and http_url:
                    break
            assert http_url, "the service never said where its HTTP API is"
            # keep draining its log so a full pipe can never stall the service
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            # the embedded defaults are all up: log, projections, VTP, NATS, HTTP
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(http_url + "healthz") as response:  # noqa: S310 - loopback
                        health = json.loads(response.read())
                except urllib.error.HTTPError as exc:  # 503 while something is still starting
                    assert exc.code == 503
                    health = json.loads(exc.read())
                if all(c["up"] for c in health["components"].values()) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert health["log"]["up"] and set(health["components"]) >= {"bursts", "projections", "nats"}
            assert all(c["up"] for c in health["components"].values()), health
            # while it runs: rebuild is refused, import is taken in and projected by the service
            busy = burstbus(data, "rebuild")
            assert busy.returncode == 3 and "already running" in busy.stderr
            if signum == signal.SIGTERM:
                burstbus(data, "import", str(packets), check=True)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    rows = sqlite3.connect(data / "projections.sqlite").execute("SELECT COUNT(*) FROM burst_notices").fetchone()[0]
                    if rows == 6:
                        break
                    time.sleep(0.1)
                assert rows == 6
            os.kill(proc.pid, signum)
            assert proc.wait(timeout=60) == 0
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not SHARED_VOEVENTS.is_dir(), reason="shared/voevents not present")
def test_import_of_the_real_packets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = burstbus(data, "import", str(SHARED_VOEVENTS), check=True)
    summary = first.stdout.strip().splitlines()
    print("\n".join(summary[-8:]))
    total_line = next(line for line in summary if " packets: " in line)
    total = int(total_line.split()[0])
    assert total >= 2000
    refused_lines = [line for line in summary if line.startswith("refused  ")]
    for line in refused_lines:
        assert ": " in line.split(".xml", 1)[-1], line  # every refusal carries a reason
    assert any("odd_no_namespace_packet.xml" in line for line in refused_lines)
    for real in ("swift_bat_grb_pos_v2.0.xml", "swift_xrt_pos_v1.1_followup.xml", "fermi_gbm_flt_pos_v1.1.xml",
                 "integral_spiacs_v1.1.xml", "svom_eclairs_wakeup.xml", "lvc_s230527ch_preliminary_o4.xml"):
        assert not any(real in line for line in refused_lines), real
    second = burstbus(data, "import", str(SHARED_VOEVENTS), check=True)
    assert f"{total} packets: 0 accepted" in second.stdout
    assert "ok:" in burstbus(data, "verify", check=True).stdout


def test_log_follow_prints_new_events_as_they_arrive(tmp_path: Path, packets: Path) -> None:
    data = tmp_path / "data"
    burstbus(data, "import", str(packets / "good0.xml"), check=True)
    follower = subprocess.Popen(
        [sys.executable, "-m", "burstbus.cli", "--data-dir", str(data), "log", "--follow", "--type", "voevent.accepted"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["data"]["ivorn"] == "ivo://cli.example/SWIFT#BAT_0"
        burstbus(data, "import", str(packets / "good1.xml"), check=True)  # another process appends
        second = json.loads(follower.stdout.readline())
        assert second["data"]["ivorn"] == "ivo://cli.example/SWIFT#BAT_1"
        assert second["seq"] > first["seq"]
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            follower.wait(timeout=30)
        finally:
            follower.kill()


def test_demo_feeds_the_log_then_a_served_demo_fills_the_pages(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    burstbus(data, "demo", "--no-serve", "--interval", "0", "--rounds", "2", check=True)
    projections = sqlite3.connect(data / "projections.sqlite")
    bursts = dict(projections.execute("SELECT burst_id, notice_count FROM bursts").fetchall())
    assert len(bursts) == 4 and sorted(bursts.values()) == [2, 2, 3, 3]  # an SVOM and a Swift burst per round
    # Only fed: the data are in the log; no orchestrator ran, so no pipeline has started yet.
    assert projections.execute("SELECT COUNT(*) FROM processes").fetchone()[0] == 0
    assert burstbus(data, "verify").returncode == 0
    # Served: the feeder plays through the ordinary service, so its projections fill too.
    proc = subprocess.Popen(
        [sys.executable, "-m", "burstbus.cli", "--data-dir", str(data), "demo", "--interval", "0", "--rounds", "1"],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL,
        env={**os.environ, **EPHEMERAL_PORTS},
    )
    try:
        assert proc.stderr is not None
        output: list[str] = []
        threading.Thread(target=lambda: output.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
        deadline = time.monotonic() + 120
        count = 0
        while time.monotonic() < deadline and proc.poll() is None:
            count = projections.execute("SELECT COUNT(*) FROM bursts").fetchone()[0]
            if count == 6:
                break
            time.sleep(0.2)
        assert count == 6, "".join(output[-60:])
        # the orchestrator dispatches the round's data to the demo worker: the graph completes,
        # and the VT pipeline that fails its first attempt is retried
        def finished(runs: set[tuple[str, str, int]]) -> bool:
            return (any(p == "burst-summary" and s == "complete" for p, s, _ in runs)
                    and any(p == "vt-afterglow" and s == "complete" and n >= 2 for p, s, n in runs))

        runs: set[tuple[str, str, int]] = set()
        while time.monotonic() < deadline + 120 and proc.poll() is None and not finished(runs):
            runs = set(projections.execute("SELECT pipeline, status, attempts FROM processes").fetchall())
            time.sleep(0.2)
        assert finished(runs), (runs, "".join(output[-60:]))
        # the audit log stays protected, and the demo says how to sign in to it
        assert any("/signin with the read token " in line for line in output), "".join(output[-60:])
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_broken_log_file_is_a_clear_error_not_a_traceback_or_a_hang(tmp_path: Path) -> None:
    """A log file that is not a database: every command says so and exits (it used to hang,
    the failed connection's thread keeping the interpreter alive, then print a traceback)."""
    data = tmp_path / "broken"
    data.mkdir()
    (data / "log.sqlite").write_text("not a database\n")
    for command in (["verify"], ["run"]):
        result = burstbus(data, *command)
        assert result.returncode == 1, result.stderr
        assert "opening the log at" in result.stderr and "file is not a database" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("name", "what"), [("state.sqlite", "state database"), ("projections.sqlite", "projections database")])
def test_a_broken_state_or_projections_file_is_a_clear_error_not_a_traceback_or_a_hang(tmp_path: Path, name: str, what: str) -> None:
    """The databases beside the log too: one line naming the file and what to do (the
    projections one used to hang after its traceback, the state database's thread left running)."""
    data = tmp_path / "broken"
    data.mkdir()
    (data / name).write_text("not a database\n")
    result = subprocess.run(
        [sys.executable, "-m", "burstbus.cli", "--data-dir", str(data), "run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, **EPHEMERAL_PORTS},
    )
    assert result.returncode == 1, result.stderr
    assert f"opening the {what} at" in result.stderr and "file is not a database" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("setting", ["BURSTBUS_HTTP_PORT", "BURSTBUS_VTP_RECEIVE_PORT", "BURSTBUS_VTP_BROADCAST_PORT",
                                     "BURSTBUS_NATS_EMBEDDED_PORT"])
def test_run_with_a_port_taken_exits_at_start_with_one_line_naming_the_setting(tmp_path: Path, setting: str) -> None:
    """Not a supervised restart loop printing a traceback every few seconds: the operator
    learns at once which setting to change (exit 1)."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "burstbus.cli", "--data-dir", str(tmp_path / "data"), "run"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            env={**os.environ, **EPHEMERAL_PORTS, setting: str(taken)},
        )
    section, key = setting.removeprefix("BURSTBUS_").lower().split("_", 1)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("burstbus: ")]
    assert line == f"burstbus: cannot start: [{section}] {key}: 127.0.0.1:{taken} is already in use" \
                   " (another burstbus, or another program): choose another port"


def test_a_port_number_out_of_range_is_a_configuration_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "burstbus.cli", "--data-dir", str(tmp_path / "data"), "run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, **EPHEMERAL_PORTS, "BURSTBUS_HTTP_PORT": "70000"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "http.port" in result.stderr and "at most 65535" in result.stderr


def test_a_directory_without_a_log_is_said_and_nothing_is_created(tmp_path: Path) -> None:
    for command in (["verify"], ["log"], ["export", "-o", str(tmp_path / "x.gz")]):
        result = subprocess.run([sys.executable, "-m", "burstbus.cli", *command], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert result.returncode == 1, result.stderr
        assert "no log in burstbus-data" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "burstbus-data").exists()


def test_a_data_dir_that_is_a_file_is_one_sentence_for_every_command(tmp_path: Path) -> None:
    a_file = tmp_path / "log.toml"
    a_file.write_text("not a folder")
    for data_dir, said in ((a_file, "is a file, not a folder"), (a_file / "sub", f"cannot be made: {a_file} is a file")):
        for command in (["run"], ["demo"], ["import", str(tmp_path)], ["provenance", "x"], ["log"]):
            result = subprocess.run([sys.executable, "-m", "burstbus.cli", "--data-dir", str(data_dir), *command], cwd=tmp_path,
                                    capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
            assert f"the data folder {data_dir} {said}" in result.stderr
    assert a_file.read_text() == "not a folder"
    (tmp_path / "burstbus-demo").write_text("not a folder")  # the folder demo picks without --data-dir
    demo = subprocess.run([sys.executable, "-m", "burstbus.cli", "demo"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert demo.returncode == 2 and "the data folder burstbus-demo is a file, not a folder" in demo.stderr, demo.stderr


def test_global_options_work_after_the_command_and_an_unknown_type_is_named(tmp_path: Path, packets: Path) -> None:
    data = tmp_path / "data"
    burstbus(data, "import", str(packets))
    after = subprocess.run([sys.executable, "-m", "burstbus.cli", "verify", "--data-dir", str(data)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert after.returncode == 0 and "hash chain intact" in after.stdout, after.stderr
    typo = burstbus(data, "log", "--type", "burst.identifed")
    assert typo.returncode == 2 and "no event type 'burst.identifed'" in typo.stderr and "burst.identified" in typo.stderr


def test_import_goes_on_past_a_broken_archive_and_fails_when_everything_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dumps"
    folder.mkdir()
    (folder / "good.xml").write_bytes(voevent("ivo://cli.example/good#1"))
    whole = tmp_path / "whole.tar.gz"
    with tarfile.open(whole, "w:gz") as archive:
        member = tarfile.TarInfo("inside.xml")
        raw = voevent("ivo://cli.example/good#2")
        member.size = len(raw)
        import io

        archive.addfile(member, io.BytesIO(raw))
    (folder / "broken.tar.gz").write_bytes(whole.read_bytes()[:40])  # truncated
    (folder / "garbage.tar.gz").write_bytes(b"not an archive at all")
    result = burstbus(tmp_path / "data", "import", str(folder))
    assert result.returncode == 1 and "broken.tar.gz: cannot read archive" in result.stderr
    assert "broken.tar.gz: cannot read archive: Compressed file ended" in result.stderr
    assert "garbage.tar.gz: cannot read archive: not a tar archive (plain, gzip, bzip2 or xz)" in result.stderr
    assert "method gz" not in result.stderr  # one line, not each compression tarfile tried
    assert "1 accepted" in result.stdout  # the good file was imported all the same
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "nonsense.xml").write_bytes(b"<not-a-voevent/>")
    refused = burstbus(tmp_path / "data2", "import", str(bad))
    assert refused.returncode == 1 and "every packet was refused" in refused.stderr


def test_ctrl_c_at_a_terminal_stops_cleanly_without_client_errors(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the whole foreground process group; the embedded
    nats-server used to die with it before burstbus closed its connection ("unexpected EOF")."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "burstbus.cli", "--data-dir", str(tmp_path / "data"), "run"],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL,
        env={**os.environ, **EPHEMERAL_PORTS}, start_new_session=True,  # its own group, as a shell's job
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "NATS inbound" in line or "nats" in line.lower() and "connected" in line.lower():
                break
            if "burstbus running" in line:
                time.sleep(1.0)  # let NATS connect (no assertion on timing: only to get there)
                break
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = "".join(seen) + rest
    assert "burstbus stopped" in output
    assert "Traceback" not in output and "unexpected EOF" not in output.lower(), output[-3000:]
