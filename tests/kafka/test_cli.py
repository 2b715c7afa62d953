"""``burstbus kafka check`` and ``burstbus kafka backfill`` as the real program: clear lines, exit
codes, never a traceback (a wrong port, an empty configuration, a missing topic, a secret that
is not set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.kafka.harness import kafka_offsets, node
from tests.kafka.notices import lvk
from tests.kafka.tansu import TansuBroker, free_port
from tests.packets import voevent

REPO = Path(__file__).resolve().parents[2]


def burstbus(tmp_path: Path, config: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "burstbus.toml"
    path.write_text(config)
    result = subprocess.run([sys.executable, "-m", "burstbus.cli", "--config", str(path), "--data-dir", str(tmp_path / "data"), *args],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def upstream_toml(bootstrap: str, topics: list[str], name: str = "local") -> str:
    quoted = ", ".join(f'"{t}"' for t in topics)
    return f'[[kafka.upstreams]]\nname = "{name}"\nbootstrap_servers = "{bootstrap}"\ntopics = [{quoted}]\nstart = "earliest"\n'


def test_check_reports_topics_offsets_and_positions(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics(["a.topic"])
    tansu.produce("a.topic", [b"x"])
    result = burstbus(tmp_path, upstream_toml(tansu.bootstrap, ["a.topic"]), "kafka", "check")
    assert result.returncode == 0, result
    assert f"upstream local ({tansu.bootstrap}):" in result.stdout and "broker answers" in result.stdout
    assert "a.topic[0]: offsets 0.." in result.stdout and "no stored position (first start: earliest)" in result.stdout


def test_check_fails_clearly_on_a_missing_topic(tansu: TansuBroker, tmp_path: Path) -> None:
    result = burstbus(tmp_path, upstream_toml(tansu.bootstrap, ["no.such.topic"]), "kafka", "check")
    assert result.returncode == 1 and "no.such.topic: not on the broker (listed in topics: check the name)" in result.stdout


def test_check_of_a_wrong_port_says_it_cannot_reach_the_broker(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = burstbus(tmp_path, upstream_toml(f"127.0.0.1:{port}", ["a.topic"]), "kafka", "check", "--timeout", "2")
    assert result.returncode == 1
    assert "cannot reach the broker within 2 s" in result.stdout and "check bootstrap_servers" in result.stdout
    assert "problems found" in result.stderr and "FAIL" not in result.stderr  # no librdkafka noise
    backfill = burstbus(tmp_path, upstream_toml(f"127.0.0.1:{port}", ["a.topic"]), "kafka", "backfill", "--since", "2026-12-01T00:00:00Z")
    assert backfill.returncode == 1
    assert f"the broker of local (127.0.0.1:{port}) did not answer: Failed to get metadata" in backfill.stderr
    assert "KafkaError{" not in backfill.stderr  # librdkafka's words, not the object's repr


def test_check_with_nothing_configured_or_a_missing_secret(tmp_path: Path) -> None:
    empty = burstbus(tmp_path, "", "kafka", "check")
    assert empty.returncode == 2 and "no [[kafka.upstreams]] configured" in empty.stdout
    gcn = '[[kafka.upstreams]]\nname = "gcn"\nclient_id = "env:NO_SUCH_ID"\nclient_secret = "x"\npresets = ["svom"]\n'
    missing = burstbus(tmp_path, gcn, "kafka", "check")
    assert missing.returncode == 2 and "kafka.upstreams[0].client_id" in missing.stderr and "NO_SUCH_ID" in missing.stderr
    unknown = burstbus(tmp_path, upstream_toml("127.0.0.1:1", ["a"]), "kafka", "check", "--upstream", "nope")
    assert unknown.returncode == 2 and "no upstream is named 'nope'" in unknown.stdout


async def test_backfill_reads_what_the_broker_holds_once_and_a_second_run_adds_nothing(tansu: TansuBroker, tmp_path: Path) -> None:
    # Tansu answers offsets-for-times with 0: the back-fill reads from the beginning here.
    tansu.create_topics(["gcn.classic.voevent.X", "igwn.gwalert"])
    tansu.produce("gcn.classic.voevent.X", [voevent(f"ivo://t.example/bf#{i}") for i in range(20)])
    tansu.produce("igwn.gwalert", [lvk(), b"{bad"])
    config = upstream_toml(tansu.bootstrap, ["gcn.classic.voevent.X", "igwn.gwalert"])
    first = burstbus(tmp_path, config, "kafka", "backfill", "--since", "2026-11-30T00:00:00Z")
    assert first.returncode == 0, first.stderr
    assert "gcn.classic.voevent.X[0]: offsets 0..19: 20 accepted" in first.stdout
    assert "igwn.gwalert[0]: offsets 0..1: 1 accepted, 1 rejected" in first.stdout
    again = burstbus(tmp_path, config, "kafka", "backfill", "--since", "2026-11-30T00:00:00Z")
    assert again.returncode == 0 and "20 duplicate" in again.stdout
    async with node(tmp_path / "data") as n:
        records = [r for r in await n.events() if "kafka" in r.data]  # (the rest: the identifier's decisions)
        assert len(records) == 22  # 20 + 1 + 1 refusal, and each once
        assert sorted(kafka_offsets(records))[:2] == [("gcn.classic.voevent.X", 0, 0), ("gcn.classic.voevent.X", 0, 1)]
    bad = burstbus(tmp_path, config, "kafka", "backfill", "--since", "last tuesday")
    assert bad.returncode == 2 and "bad time" in bad.stderr


def test_backfill_of_a_topic_it_could_not_read_fails_naming_it_but_not_for_an_announced_preset_topic(tansu: TansuBroker, tmp_path: Path) -> None:
    """A back-fill that skipped a named topic did not do what was asked (exit 1); a preset's
    topic the broker does not have yet (SVOM's .vt) is said, and is no failure."""
    tansu.create_topics(["gcn.classic.voevent.Y"])
    tansu.produce("gcn.classic.voevent.Y", [voevent("ivo://t.example/bf#y1")])
    config = upstream_toml(tansu.bootstrap, ["gcn.classic.voevent.Y", "gcn.classic.voevent.MISSPELT"])
    named = burstbus(tmp_path, config, "kafka", "backfill", "--since", "2026-11-30T00:00:00Z")
    assert named.returncode == 1
    assert "gcn.classic.voevent.MISSPELT: not read (unknown topic)" in named.stdout
    assert "gcn.classic.voevent.Y[0]: offsets 0..0: 1 accepted" in named.stdout
    assert "gcn.classic.voevent.MISSPELT not read: check the name" in named.stderr
    asked = burstbus(tmp_path, config, "kafka", "backfill", "--since", "2026-11-30T00:00:00Z", "--topic", "nope")
    assert asked.returncode == 1 and "nope: not read (unknown topic)" in asked.stdout
    tansu.create_topics(["gcn.notices.svom.voevent.eclairs", "gcn.notices.svom.voevent.grm", "gcn.notices.svom.voevent.mxt"])
    preset = burstbus(tmp_path, f'[[kafka.upstreams]]\nname = "local"\nbootstrap_servers = "{tansu.bootstrap}"\npresets = ["svom"]\n',
                      "kafka", "backfill", "--since", "2026-11-30T00:00:00Z")
    assert preset.returncode == 0, preset.stderr
    assert "gcn.notices.svom.voevent.vt: not read (unknown topic; a preset topic, not published yet)" in preset.stdout
    assert "gcn.notices.svom.voevent.eclairs[0]: nothing since the time (next offset 0): nothing new" in preset.stdout


def test_burstbus_run_ends_with_one_line_when_librdkafka_refuses_the_consumer_settings(tmp_path: Path) -> None:
    """A setting librdkafka does not take is never better on a retry: the service stops at
    start naming it (exit 1), instead of restarting the consumer for ever with a traceback."""
    config = tmp_path / "burstbus.toml"
    config.write_text(f"""
[data]
dir = "{tmp_path / 'data'}"
[vtp]
enabled = false
[nats]
enabled = false
[http]
enabled = false
[[kafka.upstreams]]
name = "local"
bootstrap_servers = "127.0.0.1:9"
topics = ["gcn.notices.svom.voevent.eclairs"]
settings = {{ "security.protocol" = "bogus" }}
""")
    done = subprocess.run([sys.executable, "-m", "burstbus.cli", "--config", str(config), "run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 1, done.stderr
    last = [line for line in done.stderr.splitlines() if line.startswith("burstbus:")]
    assert last == ['burstbus: cannot start: [kafka] upstreams "local" settings: refused by librdkafka for the consumer: '
                    'Invalid value "bogus" for configuration property "security.protocol" (_INVALID_ARG)'], done.stderr
    assert "Traceback" not in done.stderr


async def test_check_reports_each_output_its_topic_and_how_far_its_outbox_has_published(tansu: TansuBroker, tmp_path: Path) -> None:
    tansu.create_topics(["out.exists"])
    async with node(tmp_path / "data") as n:
        for i in range(3):
            await n.ingest.submit(voevent(f"ivo://org.svom/fsc#out_{i}"), via="local", peer="test")
        await n.state.checkpoint("bridge.kafka.out.local.out.exists").save(2)
    config = (f'[[kafka.upstreams]]\nname = "local"\nbootstrap_servers = "{tansu.bootstrap}"\nconsume = false\n'
              '[[kafka.outputs]]\ntopic = "out.exists"\nupstream = "local"\n'
              '[[kafka.outputs]]\ntopic = "out.misspelt"\nupstream = "local"\nstart = "beginning"\n')
    result = burstbus(tmp_path, config, "kafka", "check")
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    exists = lines.index("  output → out.exists:")
    assert lines[exists + 1:exists + 3] == ["    on the broker (1 partition(s))", "    published through log seq 2; the log's head: seq 3"]
    misspelt = lines.index("  output → out.misspelt:")
    assert lines[misspelt + 1].startswith("    not on the broker: the outbox waits, publishing nothing, until it exists")
    assert lines[misspelt + 2] == "    not started yet (first start: beginning; the log's head: seq 3)"
