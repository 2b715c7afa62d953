"""``[kafka]``: upstreams (GCN and any Kafka), presets, secrets, refusals; the client config dicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from burstbus.bridges.kafka.config import KafkaSection, parse_start, topics_of
from burstbus.bridges.kafka.connection import (
    CONSUMER_FIXED,
    KafkaUpstream,
    consumer_config,
    producer_config,
    redacted,
)
from burstbus.bridges.kafka.presets import PRESETS, expand
from burstbus.config import ConfigError, load_config


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> KafkaSection:
    path = tmp_path / "burstbus.toml"
    path.write_text(text)
    return load_config(path, environ=environ or {}).section(KafkaSection)


def test_gcn_upstream_with_secrets_from_the_environment_and_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCN_ID", "abc")
    monkeypatch.setenv("GCN_SECRET", "s3cret")
    section = load(tmp_path, """
[[kafka.upstreams]]
name = "gcn"
client_id = "env:GCN_ID"
client_secret = "env:GCN_SECRET"
presets = ["svom", "lvk"]
topics = ["gcn.classic.voevent.GECAM_FLT"]
start = "2026-11-30T00:00:00Z"
""")
    [gcn] = section.upstreams
    assert gcn.is_gcn and gcn.heartbeat_topic == "gcn.heartbeat"
    assert topics_of(gcn) == (*PRESETS["svom"], "igwn.gwalert", "gcn.classic.voevent.GECAM_FLT")
    config = consumer_config(gcn)
    assert config["bootstrap.servers"] == "kafka.gcn.nasa.gov"
    assert config["sasl.oauthbearer.client.id"] == "abc" and config["sasl.oauthbearer.client.secret"] == "s3cret"
    assert config["sasl.oauthbearer.token.endpoint.url"] == "https://auth.gcn.nasa.gov/oauth2/token"
    assert config["security.protocol"] == "sasl_ssl" and config["group.id"] == "burstbus.kafka.gcn"
    assert {k: config[k] for k in CONSUMER_FIXED} == dict(CONSUMER_FIXED)
    assert redacted(config)["sasl.oauthbearer.client.secret"] == "***"
    producer = producer_config(gcn)
    assert producer["enable.idempotence"] == "true" and producer["acks"] == "all"
    assert producer["compression.type"] == "zstd" and producer["message.max.bytes"] > 4 * 1024 * 1024


def test_test_gcn_domain(tmp_path: Path) -> None:
    section = load(tmp_path, '[[kafka.upstreams]]\nname = "t"\ndomain = "test.gcn.nasa.gov"\nclient_id = "a"\nclient_secret = "b"\ntopics = ["x.y"]\n')
    config = consumer_config(section.upstreams[0])
    assert config["bootstrap.servers"] == "kafka.test.gcn.nasa.gov"
    assert config["sasl.oauthbearer.token.endpoint.url"] == "https://auth.test.gcn.nasa.gov/oauth2/token"


def test_any_kafka_by_bootstrap_servers_and_librdkafka_settings(tmp_path: Path) -> None:
    secret = tmp_path / "hop.secret"
    secret.write_text("pw\n")
    section = load(tmp_path, f"""
[[kafka.upstreams]]
name = "hop"
bootstrap_servers = "kafka.scimma.org:9092"
topics = ["gcn.notice"]
[kafka.upstreams.settings]
"security.protocol" = "sasl_ssl"
"sasl.mechanisms" = "SCRAM-SHA-512"
"sasl.username" = "me"
"sasl.password" = "file:{secret}"
"fetch.wait.max.ms" = 100
"socket.keepalive.enable" = true
""")
    [hop] = section.upstreams
    assert not hop.is_gcn and hop.heartbeat_topic == ""
    config = consumer_config(hop)
    assert config["bootstrap.servers"] == "kafka.scimma.org:9092" and config["sasl.password"] == "pw"
    assert config["fetch.wait.max.ms"] == "100" and config["socket.keepalive.enable"] == "true"
    assert "sasl.oauthbearer.method" not in config  # no GCN defaults for another cluster


@pytest.mark.parametrize(("text", "key"), [
    ('[[kafka.upstreams]]\nname = "gcn"\ntopics = ["a"]\n', "kafka.upstreams[0].client_id"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "no-port"\ntopics = ["a"]\n', "kafka.upstreams[0].bootstrap_servers"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\npresets = ["hubble"]\n', "kafka.upstreams[0].presets[0]"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["bad topic"]\n', "kafka.upstreams[0].topics[0]"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["a"]\nstart = "yesterday"\n', "kafka.upstreams[0].start"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["a"]\nstart = "2026-11-30T00:00:00"\n', "kafka.upstreams[0].start"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\n', "kafka.upstreams[0].topics"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["a"]\nsettings = { "enable.auto.commit" = true }\n',
     "kafka.upstreams[0].settings.enable.auto.commit"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["a"]\nsettings = { "sasl.password" = "env:NOPE" }\n',
     "kafka.upstreams[0].settings.sasl.password"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["a"]\nsettings = "x"\n', "kafka.upstreams[0].settings"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["a"]\n[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["a"]\n',
     "kafka.upstreams[1].name"),
    ('[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["a"]\ncolour = "red"\n', "kafka.upstreams[0].colour"),
    ('[kafka]\non_duty = ["alice"]\n', "kafka.on_duty[0]"),
])
def test_bad_entries_are_refused_with_their_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.key == key, caught.value


@pytest.mark.parametrize("topic", ["preset:svom", "PRESET:Fermi"])
def test_a_preset_written_as_a_topic_is_refused_saying_how_to_write_it(tmp_path: Path, topic: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f'[[kafka.upstreams]]\nname = "x"\nbootstrap_servers = "h:1"\ntopics = ["{topic}"]\n')
    assert caught.value.key == "kafka.upstreams[0].topics[0]"
    assert f'write presets = ["{topic.partition(":")[2].lower()}"]' in caught.value.problem


def test_no_kafka_section_means_nothing_to_read(tmp_path: Path) -> None:
    section = load(tmp_path, "")
    assert section.upstreams == () and section.consumed() == ()


def test_presets_and_start() -> None:
    assert expand(["lvk", "LVK", "ep"], ["igwn.gwalert", "x"]) == ("igwn.gwalert", "gcn.notices.einstein_probe.wxt.alert", "x")
    for name in ("svom", "swift", "fermi", "lvk", "ep", "icecube"):
        assert PRESETS[name] and "gcn.heartbeat" not in PRESETS[name]
    assert parse_start("now") == "now" and parse_start("Earliest") == "earliest"
    assert parse_start("2026-11-30T01:00:00+01:00").isoformat() == "2026-11-30T00:00:00+00:00"  # type: ignore[union-attr]


def test_an_upstream_used_only_for_outputs_needs_no_topics() -> None:
    up = KafkaUpstream(name="out", bootstrap_servers="h:1", consume=False)
    assert KafkaSection(upstreams=(up,)).consumed() == ()
