"""Roles from [acl]: help lists exactly what the asker may run; bad ACLs stop the start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from burstbus.acl import Acl, Role
from burstbus.bots.commands import Registry
from burstbus.chat import Asker
from burstbus.config import ConfigError, load_config
from tests.bots.conftest import ALICE, BOB, CAROL, DAVE, MALLORY, VIC, World, make_world, settings

READ_ONLY = ["help", "whoami", "bursts", "burst", "notices", "processes", "near", "status", "triggers"]


def listed(reply_text: str) -> list[str]:
    return [line.split(" ")[0] for line in reply_text.splitlines()[1:] if " — " in line]


async def test_help_lists_only_what_each_asker_may_run(world: World) -> None:
    assert listed((await world.say(VIC, "help")).text) == READ_ONLY
    assert listed((await world.say(MALLORY, "help")).text) == READ_ONLY  # default role: viewer
    assert listed((await world.say(ALICE, "help")).text) == [*READ_ONLY, "trigger", "withdraw", "process"]
    approver = [*READ_ONLY, "trigger", "withdraw", "approve", "deny", "process", "retract", "publish"]
    assert listed((await world.say(BOB, "help")).text) == approver
    assert listed((await world.say(DAVE, "HELP")).text) == [*approver, "checkpoint"]
    hidden = await world.say(None, "help", via="room", room="ba@conference.fsc.example", nick="bob")
    assert listed(hidden.text) == READ_ONLY
    assert "direct message" in hidden.text


async def test_help_on_one_command(world: World) -> None:
    reply = await world.say(ALICE, "help trigger")
    assert reply.text.startswith("trigger TELESCOPE BURST [note]")
    assert "approvers" in reply.text
    assert "not available to you" in (await world.say(VIC, "help approve")).text
    assert "Did you mean 'approve'" in (await world.say(CAROL, "help aprove")).text


async def test_nobody_role_gets_help_and_whoami_only(tmp_path: Path) -> None:
    async with make_world(tmp_path, acl={"default_role": "none"}) as world:
        assert listed((await world.say(MALLORY, "help")).text) == ["help", "whoami"]
        refused = await world.say(MALLORY, "bursts")
        assert "not in my access list" in refused.text
        assert "mallory@elsewhere.example" in refused.text
        hidden = await world.say(None, "bursts", via="room", room="ba@conference.fsc.example", nick="vic")
        assert "Sorry" in hidden.text
        assert listed((await world.say(VIC, "help")).text) == READ_ONLY


async def test_whoami(world: World) -> None:
    assert (await world.say(ALICE, "whoami")).text == "You are alice@fsc.example: ba (includes viewer); telescopes: TAROT, COLIBRI."
    assert "approver (includes ba, viewer); telescopes: every telescope" in (await world.say("CAROL@fsc.example", "whoami")).text
    assert "not in my access list" in (await world.say(MALLORY, "whoami")).text
    assert "hides your real address" in (await world.say(None, "whoami", via="room", room="r@c.x", nick="alice")).text


def test_roles_imply_lower_ones_and_nicknames_are_never_identity(tmp_path: Path) -> None:
    config = load_config(None, environ={}, overrides=settings(tmp_path))
    acl = Acl(config.acl)
    assert acl.grant(Asker(jid=CAROL, via="dm")).role == Role.APPROVER
    assert acl.grant(Asker(jid="carol@FSC.EXAMPLE", via="dm")).role == Role.APPROVER  # JIDs ignore case
    as_nick = acl.grant(Asker(jid=None, via="room", room="ba@conference.fsc.example", nick="carol@fsc.example"))
    assert as_nick.role == Role.VIEWER and as_nick.jid is None
    spoof = acl.grant(Asker(jid=MALLORY, via="room", room="ba@conference.fsc.example", nick="carol"))
    assert spoof.role == Role.VIEWER and not spoof.listed
    assert acl.approvers("TAROT") == [BOB, CAROL, DAVE]
    assert acl.approvers("colibri") == [CAROL, DAVE]
    registry = Registry()
    assert registry.refusal(registry.lookup("approve"), as_nick) == "hidden-jid"  # type: ignore[arg-type]


def user(**values: Any) -> dict[str, Any]:
    return {"jid": "x@fsc.example", "roles": ["ba"], **values}


@pytest.mark.parametrize(
    ("acl", "triggers", "key", "words"),
    [
        ({"users": [user(roles=["ba", "superuser"])]}, {}, "acl.users[0].roles[1]", "unknown role"),
        ({"users": [user(jid="x@fsc.example/phone")]}, {}, "acl.users[0].jid", "bare JID"),
        ({"users": [user(jid="not a jid")]}, {}, "acl.users[0].jid", "bare JID"),
        ({"users": [user(), user(jid="X@fsc.example")]}, {}, "acl.users[1].jid", "twice"),
        ({"users": [user(roles=[])]}, {}, "acl.users[0].roles", "at least one"),
        ({"users": [user(telescopes=["TAROT", "HUBBLE"])]}, {}, "acl.users[0].telescopes[1]", "unknown telescope"),
        ({"default_role": "admin"}, {}, "acl.default_role", "must be one of"),
        ({}, {"telescopes": [{"name": "TAROT"}, {"name": "tarot"}]}, "triggers.telescopes[1].name", "duplicate"),
        ({}, {"telescopes": [{"name": "T", "jids": ["robot"]}]}, "triggers.telescopes[0].jids[0]", "bare JID"),
        ({}, {"telescopes": [{"name": "T", "nats_subject": "a..b"}]}, "triggers.telescopes[0].nats_subject", "subject"),
        ({}, {"telescopes": [{"name": "T", "vtp_stream": "ivo://x#y"}]}, "triggers.telescopes[0].vtp_stream", "ivo://"),
        ({}, {"telescopes": [{"name": "T", "template": "/nonexistent.j2"}]}, "triggers.telescopes[0].template", "not found"),
        ({}, {"code_minutes": 0}, "triggers.code_minutes", "at least 1"),
        ({}, {"code_secret": "short"}, "triggers.code_secret", "16 characters"),
        ({}, {"telescopes": [{"name": "T", "two_person": "yes"}]}, "triggers.telescopes[0].two_person", "true or false"),
    ],
)
def test_a_bad_acl_or_trigger_config_names_its_key(acl: dict[str, Any], triggers: dict[str, Any], key: str, words: str) -> None:
    base: dict[str, Any] = {"triggers": {"telescopes": [{"name": "TAROT"}]}}
    if triggers:
        base["triggers"] = triggers
    if acl:
        base["acl"] = acl
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={}, overrides=base)
    assert info.value.key == key
    assert words in str(info.value)


def test_a_good_config_file(tmp_path: Path) -> None:
    path = tmp_path / "burstbus.toml"
    path.write_text(
        """
[acl]
default_role = "none"
[[acl.users]]
jid = "alice@fsc.example"
roles = ["ba", "approver"]
telescopes = ["TAROT"]

[triggers]
code_minutes = 5
code_secret = "env:BOT_SECRET"
[[triggers.telescopes]]
name = "TAROT"
two_person = true
jids = ["tarot@robots.example"]
nats_subject = "svom.trigger.tarot"
""")
    import os

    os.environ["BOT_SECRET"] = "0123456789abcdef0123"
    try:
        config = load_config(path, environ={})
    finally:
        del os.environ["BOT_SECRET"]
    assert config.acl.users[0].role == Role.APPROVER
    assert config.triggers.telescope("tarot") is not None
    assert config.triggers.telescopes[0].stream("burstbus.local") == "ivo://burstbus.local/trigger"
