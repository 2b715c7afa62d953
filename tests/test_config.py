"""Configuration: defaults, file, environment, and refusal that names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from burstbus.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "burstbus.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.data_dir == Path("burstbus-data")
    assert config.log.synchronous == "FULL"
    assert config.ingest.max_bytes == 1_048_576
    assert config.bursts.roles == ("observation",)


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[log]\nsynchronous = "normal"\n[data]\ndir = "/srv/bb"\n[ingest]\nmax_bytes = 4096\n')
    config = load_config(path, environ={"BURSTBUS_INGEST_MAX_BYTES": "8192", "BURSTBUS_UNRELATED": "x"})
    assert config.log.synchronous == "NORMAL"
    assert config.data_dir == Path("/srv/bb")
    assert config.ingest.max_bytes == 8192
    config = load_config(path, environ={"BURSTBUS_DATA_DIR": "/env"}, overrides={"data": {"dir": "/cli"}})
    assert config.data_dir == Path("/cli")


def test_burst_rules_from_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[bursts]\nroles = ["observation", "test"]\n'
        '[[bursts.rules]]\nname = "grb-name"\nxpath = "//Param[@name=\'GRB_Name\']/@value"\nprefix = "grb-"\n',
    )
    config = load_config(path, environ={})
    assert config.bursts.roles == ("observation", "test")
    assert config.bursts.rules[0].prefix == "grb-"


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ("[log]\nsynchronus = \"FULL\"\n", {}, "log.synchronus"),
        ("[log]\nsynchronous = \"FAST\"\n", {}, "log.synchronous"),
        ("[ingest]\nmax_bytes = \"big\"\n", {}, "ingest.max_bytes"),
        ("[ingest]\nmax_bytes = 10\n", {}, "ingest.max_bytes"),
        ("", {"BURSTBUS_INGEST_THREADS": "two"}, "ingest.threads"),
        ("[nonsense]\nx = 1\n", {}, "nonsense"),
        ("[bursts]\nroles = [\"observaton\"]\n", {}, "bursts.roles[0]"),
        ("[bursts]\nkinds = [\"grb\", \"gamma\"]\n", {}, "bursts.kinds[1]"),
        ("", {"BURSTBUS_BURSTS_COINCIDENCE_KINDS": "grb,nu"}, "bursts.coincidence_kinds[1]"),
        ("[bursts]\ncoincidence_window = -1\n", {}, "bursts.coincidence_window"),
        ("[[bursts.rules]]\nname = \"r\"\nxpath = \"//[\"\n", {}, "bursts.rules[0].xpath"),
        ("[[bursts.rules]]\nxpath = \"//a\"\n", {}, "bursts.rules[0].name"),
        ("[log\n", {}, "burstbus.toml"),
    ],
)
def test_bad_configuration_is_refused_naming_the_key(tmp_path: Path, text: str, env: dict[str, str], key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=env)
    assert key in str(caught.value)


def test_a_wrong_value_is_refused_saying_what_the_key_is(tmp_path: Path) -> None:
    """"must be a number, not '30s'" alone leaves the operator guessing the unit: the error
    also gives the key's own description (its ``#:`` comment), from the file or the environment."""
    path = write(tmp_path, '[log]\npoll_interval = "1s"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "must be a number, not '1s'" in str(caught.value)
    assert "poll_interval: How soon a reader notices appends made by another process or node (seconds)" in str(caught.value)
    with pytest.raises(ConfigError) as from_env:
        load_config(write(tmp_path, ""), environ={"BURSTBUS_LOG_POLL_INTERVAL": "soon"})
    assert "(seconds)" in str(from_env.value)
    with pytest.raises(ConfigError) as nested:  # an unknown key is not a wrong value: no description
        load_config(write(tmp_path, "[log]\npoll_intervall = 1\n"), environ={})
    assert "unknown key" in str(nested.value) and "How soon" not in str(nested.value)


def test_the_documented_example_configuration_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/burstbus.example.toml shows every section; it must stay a valid configuration."""
    for name in ("NATS_PASSWORD", "BURSTBUS_HTTP_TOKEN", "XMPP_PASSWORD", "BURSTBUS_CODE_SECRET", "SLACK_TOKEN"):
        monkeypatch.setenv(name, f"secret-{name.lower()}")
    example = Path(__file__).resolve().parents[1] / "docs" / "burstbus.example.toml"
    config = load_config(example, environ={})
    assert config.xmpp.enabled and config.slack.enabled and len(config.acl.users) == 3
    assert [t.name for t in config.triggers.telescopes] == ["TAROT", "COLIBRI"]
    assert config.http.link_base() == "https://fsc.example/burstbus"
    assert config.nats.mappings[0].type == "vhf.status"
