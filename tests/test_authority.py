"""The authority rule (burstbus/authority.py): who may publish under which IVORNs, decided the
same way for every transport, and refused at configuration time when a grant could open a
trigger stream."""

from __future__ import annotations

from typing import Any

import pytest

from burstbus.authority import AuthorityGrant, AuthorityPolicy, AuthoritySection
from burstbus.config import ConfigError, load_config

TAROT = "ivo://fsc.example/trigger/tarot"
DEFAULT_STREAM = "ivo://fsc.example/trigger"


def policy(**section: Any) -> AuthorityPolicy:
    grants = tuple(AuthorityGrant(**g) for g in section.pop("grants", ()))
    return AuthorityPolicy.of(
        AuthoritySection(grants=grants, **section),
        trigger_streams=[DEFAULT_STREAM, TAROT],
        own=["ivo://fsc.example/", "ivo://burstbus.local/broker"],
    )


@pytest.mark.parametrize("via,peer", [
    ("vtp", "192.0.2.7"), ("vtp-upstream", "broker.example:8099"), ("xmpp", "forwarder@fsc.example"),
    ("nats", "burstbus.in.voevent"), ("http", "127.0.0.1"), ("kafka", "gcn.notices.svom.voevent.eclairs"),
    ("import", "/tmp/x.xml"), ("local", "demo"), ("local", "test-events"), ("local", "bob@fsc.example"),
])
@pytest.mark.parametrize("ivorn", [
    f"{TAROT}#anything",
    f"{DEFAULT_STREAM}#r1",
    "IVO://FSC.Example/Trigger/TAROT#x",  # IVOA identifiers compare case-insensitively
    "ivo://fsc.example/%74rigger/tarot#x",  # percent-encoded
    "ivo://fsc.example/trigger/tarot/../x#y",
    "ivo://fsc.example/triggers#x",  # over-matching a reserved stream is the safe direction
])
def test_nobody_but_the_trigger_workflow_publishes_in_a_trigger_stream(via: str, peer: str, ivorn: str) -> None:
    for rules in (policy(), policy(grants=[{"source": "*", "prefixes": ["ivo://fsc.example/"]}])):
        reason = rules.refusal(via, peer, ivorn)
        assert reason is not None and "trigger" in reason
    assert policy().refusal("local", "triggers", ivorn) is None


def test_the_trigger_workflow_publishes_only_in_trigger_streams() -> None:
    assert policy().refusal("local", "triggers", "ivo://nasa.gsfc.gcn/SWIFT#x") is not None
    assert policy().refusal("local", "triggers", "ivo://fsc.example/notices#x") is not None


def test_reserved_authorities_are_for_local_components_and_explicit_grants() -> None:
    rules = policy(grants=[{"source": "vtp-upstream:twin.example:8099", "prefixes": ["ivo://fsc.example/"]}])
    own = "ivo://fsc.example/notices#sb1"
    assert rules.refusal("local", "demo", own) is None
    assert rules.refusal("local", "test-events", "ivo://burstbus.local/broker#TestEvent-1") is None
    assert rules.refusal("vtp-upstream", "twin.example:8099", own) is None
    refused = rules.refusal("vtp", "192.0.2.7", own)
    assert refused is not None and "reserved" in refused and '[[authority.grants]] source = "vtp:192.0.2.7"' in refused
    assert rules.refusal("vtp", "192.0.2.7", "ivo://Burstbus.Local/broker#TestEvent-forged") is not None
    # the twin may publish our notices, but still no trigger
    assert rules.refusal("vtp-upstream", "twin.example:8099", f"{TAROT}#x") is not None


def test_a_bare_run_accepts_ordinary_notices_from_anyone() -> None:
    rules = policy()
    for via, peer in (("vtp", "192.0.2.7"), ("xmpp", "x@y"), ("nats", "burstbus.in.voevent"), ("http", "::1")):
        assert rules.refusal(via, peer, "ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_1") is None
        assert rules.refusal(via, peer, "ivo://org.svom/fsc#sb1") is None


def test_a_grant_restricts_its_source_to_its_prefixes() -> None:
    rules = policy(grants=[
        {"source": "vtp:10.0.0.0/8", "prefixes": ["ivo://nasa.gsfc.gcn"]},
        {"source": "xmpp:*@gcn.example", "prefixes": ["ivo://gcn.example/", "ivo://other.example/a"]},
    ])
    assert rules.refusal("vtp", "10.1.2.3", "ivo://nasa.gsfc.gcn/SWIFT#1") is None
    # "ivo://nasa.gsfc.gcn" is an authority: it never covers a longer one
    assert rules.refusal("vtp", "10.1.2.3", "ivo://nasa.gsfc.gcn.evil/SWIFT#1") is not None
    refused = rules.refusal("vtp", "10.1.2.3", "ivo://org.svom/fsc#1")
    assert refused is not None and "may publish only under ivo://nasa.gsfc.gcn/" in refused
    assert rules.refusal("vtp", "192.0.2.1", "ivo://org.svom/fsc#1") is None  # not in 10/8: the default
    assert rules.refusal("xmpp", "Bot@GCN.example", "ivo://other.example/a/b#1") is None
    assert rules.refusal("xmpp", "bot@gcn.example", "ivo://other.example/b#1") is not None


def test_default_none_needs_a_grant_for_everything() -> None:
    rules = policy(default="none", grants=[{"source": "nats:burstbus.in.*", "prefixes": ["ivo://org.svom/"]}])
    assert rules.refusal("nats", "burstbus.in.voevent", "ivo://org.svom/fsc#1") is None
    assert rules.refusal("vtp", "127.0.0.1", "ivo://org.svom/fsc#1") is not None
    assert rules.refusal("local", "demo", "ivo://org.svom/fsc#1") is None


def test_describe_answers_who_can_move_a_telescope() -> None:
    rows = dict(policy(grants=[{"source": "vtp:10.0.0.0/8", "prefixes": ["ivo://nasa.gsfc.gcn/"]}]).describe())
    assert rows[TAROT].startswith("local:triggers only")
    assert rows[DEFAULT_STREAM].startswith("local:triggers only")
    assert "vtp:10.0.0.0/8" in rows["ivo://nasa.gsfc.gcn/"]


def _config(**authority: Any) -> None:
    load_config(environ={}, overrides={
        "triggers": {"authority": "fsc.example", "telescopes": [{"name": "TAROT", "vtp_stream": TAROT}]},
        "authority": authority,
    })


@pytest.mark.parametrize("authority,key", [
    ({"grants": [{"source": "vtp:10.0.0.0/8", "prefixes": [f"{TAROT}/east"]}]}, "authority.grants[0].prefixes[0]"),
    ({"grants": [{"source": "xmpp:x@y", "prefixes": [DEFAULT_STREAM]}]}, "authority.grants[0].prefixes[0]"),
    ({"grants": [{"source": "local:triggers", "prefixes": ["ivo://a/"]}]}, "authority.grants[0].source"),
    ({"grants": [{"source": "vtp:not-an-address", "prefixes": ["ivo://a/"]}]}, "authority.grants[0].source"),
    ({"grants": [{"source": "192.0.2.1", "prefixes": ["ivo://a/"]}]}, "authority.grants[0].source"),
    ({"grants": [{"source": "vtp:192.0.2.1", "prefixes": []}]}, "authority.grants[0].prefixes"),
    ({"grants": [{"source": "vtp:192.0.2.1", "prefixes": ["gcn"]}]}, "authority.grants[0].prefixes[0]"),
    ({"reserved": ["fsc.example"]}, "authority.reserved[0]"),
    ({"default": "everything"}, "authority.default"),
])
def test_bad_authority_config_is_refused_with_its_key(authority: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(**authority)
    assert caught.value.key == key


def test_the_configured_policy_reserves_our_authorities_and_every_trigger_stream() -> None:
    config = load_config(environ={}, overrides={
        "triggers": {"authority": "fsc.example", "telescopes": [{"name": "TAROT", "vtp_stream": TAROT}, {"name": "GWAC"}]},
        "vtp": {"local_ivo": "ivo://broker.fsc.example/vtp"},
        "authority": {"reserved": ["ivo://org.svom/fsc"]},
    })
    rules = config.authority_policy()
    assert set(config.trigger_streams) == {DEFAULT_STREAM, TAROT}
    for ivorn in (f"{TAROT}#1", f"{DEFAULT_STREAM}#1", "ivo://fsc.example/x#1", "ivo://broker.fsc.example/vtp#t",
                  "ivo://org.svom/fsc#sb1"):
        assert rules.refusal("vtp", "192.0.2.7", ivorn) is not None, ivorn
    assert rules.refusal("vtp", "192.0.2.7", "ivo://org.svom/gcn#sb1") is None


def test_burstbus_authority_tells_who_can_move_each_telescope(tmp_path: Any, capsys: Any) -> None:
    from burstbus.cli import main

    path = tmp_path / "burstbus.toml"
    path.write_text(
        '[triggers]\nauthority = "fsc.example"\n'
        '[[triggers.telescopes]]\nname = "TAROT"\nvtp_stream = "ivo://fsc.example/trigger/tarot"\n'
        'nats_subject = "svom.trigger.tarot"\n'
        '[[acl.users]]\njid = "alice@fsc.example"\nroles = ["ba"]\ntelescopes = ["TAROT"]\n'
        '[[acl.users]]\njid = "bob@fsc.example"\nroles = ["approver"]\ntelescopes = ["TAROT"]\n'
        '[[authority.grants]]\nsource = "vtp-upstream:fsc.svom.org:8099"\nprefixes = ["ivo://org.svom/"]\n'
    )
    assert main(["--config", str(path), "--data-dir", str(tmp_path / "data"), "authority"]) == 0
    out = capsys.readouterr().out
    assert "ivo://fsc.example/trigger/tarot  local:triggers only" in out
    assert "ivo://org.svom/" in out and "vtp-upstream:fsc.svom.org:8099 (and nothing else)" in out
    assert "request: alice@fsc.example, bob@fsc.example" in out
    assert "approve: bob@fsc.example (two people: never the requester)" in out
    assert "NATS subject svom.trigger.tarot" in out
    assert not (tmp_path / "data").exists()  # a question about the config touches no data


async def test_our_own_notice_coming_back_byte_for_byte_is_a_duplicate_not_a_refusal(tmp_path: Any) -> None:
    """Our notices published to Kafka come back through the topics we follow (and a twin
    centre's broker relays them): the exact bytes of a packet already accepted change nothing.
    Changed bytes are still refused for authority, and a trigger stream records every replay."""
    from burstbus.ingest import Ingest
    from burstbus.store.sqlite import SQLiteEventLog
    from tests.packets import voevent

    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    ingest = Ingest(log, authority=policy())
    try:
        ours = voevent("ivo://fsc.example/notices#sb1_ECL-202")
        assert (await ingest.submit(ours, via="local", peer="notices")).outcome == "accepted"
        back = await ingest.submit(ours, via="kafka", peer="gcn.notices.svom.voevent.eclairs")
        assert back.outcome == "duplicate"
        forged = voevent("ivo://fsc.example/notices#sb1_ECL-202", ra=10.0)
        changed = await ingest.submit(forged, via="kafka", peer="gcn.notices.svom.voevent.eclairs")
        assert changed.outcome == "rejected" and changed.code == "authority"
        trigger = voevent(f"{TAROT}#r1")
        assert (await ingest.submit(trigger, via="local", peer="triggers")).outcome == "accepted"
        replay = await ingest.submit(trigger, via="vtp", peer="192.0.2.7")
        assert replay.outcome == "rejected" and replay.code == "authority"
    finally:
        await ingest.close()
        await log.close()
