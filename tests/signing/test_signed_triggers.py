"""The trigger path with signatures on, through a real core (SQLite log, ingest, bot): the
approved trigger is signed by the ingest, a ``require`` rule on the trigger streams accepts
only our key, and the telescope's JID and NATS subject get the signed bytes the log keeps."""

from __future__ import annotations

from pathlib import Path

from burstbus.ingest import accepted_event_id
from burstbus.payload import xml_bytes
from tests.bots.conftest import ALICE, BURST, CAROL, TAROT_JID, TAROT_SUBJECT, make_world
from tests.signing.conftest import Keys
from tests.signing.keys import armour_in, home, root_bytes


async def test_an_approved_trigger_goes_out_signed_and_verifies_with_gpg(tmp_path: Path, keys: Keys) -> None:
    ring = keys.keyring(tmp_path / "keyring")
    signatures = {
        "enabled": True, "keyring": str(ring), "sign_with": keys.centre_fpr,
        "rules": [{"name": "our triggers", "action": "require", "ivorns": ["ivo://fsc.example/trigger"],
                   "keys": [keys.centre_fpr]}],
    }
    try:
        async with make_world(tmp_path, signatures=signatures) as world:
            _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
            approved = await world.say(CAROL, f"approve {code} TAROT")
            assert "Sent to TAROT via VTP; XMPP tarot@robots.example; NATS svom.trigger.tarot" in approved.text, approved.text
            ivorn = (await world.events("trigger.approved"))[0].data["voevent_ivorn"]
            accepted = await world.core.log.find(accepted_event_id(ivorn))
            assert accepted is not None and accepted.actor == "local:triggers"
            signature = accepted.data["signature"]
            assert signature["status"] == "valid" and signature["signed_here"] is True
            assert signature["fingerprint"] == keys.centre_fpr and signature["rules"] == ["our triggers"]
            stored = xml_bytes(accepted.data)
            [(jid, xml, _)] = world.messenger.voevents
            [(subject, payload, _)] = world.publisher.messages
            assert (jid, subject) == (TAROT_JID, TAROT_SUBJECT)
            assert xml == payload == stored and b"=====BEGIN PGP SIGNATURE=====" in stored
            # The notices the world was filled with (local:tests) are not signed, and no rule asks.
            [first, *_] = await world.events("voevent.accepted")
            assert first.data["signature"] == {"status": "none"}
        (tmp_path / "t.sig").write_bytes(armour_in(stored))
        (tmp_path / "t.root").write_bytes(root_bytes(stored))
        checked = keys.outsider.gpg("--verify", str(tmp_path / "t.sig"), str(tmp_path / "t.root"), check=False)
        assert checked.returncode == 0, checked.stderr.decode()
    finally:
        home(ring).kill_agents()


async def test_a_trigger_that_cannot_be_signed_is_not_sent(tmp_path: Path, keys: Keys) -> None:
    """The key vanished after the start (the keyring was replaced): the ingest refuses the
    packet (code ``signature``) rather than sending an unsigned trigger; the request fails."""
    ring = keys.keyring(tmp_path / "keyring")
    signatures = {"enabled": True, "keyring": str(ring), "sign_with": keys.centre_fpr}
    try:
        async with make_world(tmp_path, signatures=signatures) as world:
            world.core.ingest.signatures.keyring.sign_with = "F" * 40  # type: ignore[union-attr]
            _, code = await world.request(ALICE, f"trigger TAROT {BURST}")
            reply = await world.say(CAROL, f"approve {code} TAROT")
            assert "could not sign the packet" in reply.text, reply.text
            assert world.messenger.voevents == [] and world.publisher.messages == []
            [failed] = await world.events("trigger.failed")
            assert "could not sign" in failed.data["reason"]
            [rejected] = await world.events("voevent.rejected")
            assert rejected.data["code"] == "signature" and rejected.actor == "local:triggers"
    finally:
        home(ring).kill_agents()
