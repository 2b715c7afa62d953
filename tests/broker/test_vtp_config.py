"""A bad [vtp] setting stops the start naming the key."""

from __future__ import annotations

import pytest

from burstbus.config import ConfigError, load_config


@pytest.mark.parametrize(
    "vtp, key",
    [
        ({"author_allow": ["10.0.0.0/33"]}, "vtp.author_allow[0]"),
        ({"subscriber_filters": [{"xpath": "//Param[", "network": "10.0.0.0/8"}]}, "vtp.subscriber_filters[0].xpath"),
        ({"upstreams": [{"host": ""}]}, "vtp.upstreams[0].host"),
        ({"local_ivo": "burstbus"}, "vtp.local_ivo"),
        ({"receive_prot": 1}, "vtp.receive_prot"),
    ],
)
def test_bad_vtp_settings_are_refused(vtp: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={}, overrides={"vtp": vtp})
    assert caught.value.key == key


def test_defaults_and_environment() -> None:
    config = load_config(environ={"BURSTBUS_VTP_RECEIVE_PORT": "0", "BURSTBUS_VTP_AUTHOR_ALLOW": "10.0.0.0/8, 127.0.0.1/32"})
    assert (config.vtp.receive_host, config.vtp.receive_port) == ("127.0.0.1", 0)
    assert (config.vtp.broadcast_host, config.vtp.broadcast_port) == ("127.0.0.1", 8099)
    assert config.vtp.author_allow == ("10.0.0.0/8", "127.0.0.1/32")
    assert config.vtp.max_bytes == 1_048_576
