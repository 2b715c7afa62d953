"""Signed VOEvents with a real ``gpg`` (issue 15, part 4): Comet's scheme, verified on ingest
against a keyring with a trust policy, and applied to the centre's own notices and triggers.

Acceptance: an independent packet signed with the ``gpg`` command line is verified; one byte
changed after signing is refused where a signature is required; a packet burstbus signed
verifies with ``gpg --verify`` over the same byte range."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from burstbus.authority import AuthorityPolicy, AuthoritySection
from burstbus.component import StartupError
from burstbus.config import load_config
from burstbus.ingest import Ingest, accepted_event_id
from burstbus.payload import xml_bytes
from burstbus.service import Core
from burstbus.signing.armour import without_signature
from burstbus.signing.policy import SignatureRule, SignaturesSection
from burstbus.signing.signatures import Signatures
from burstbus.store.base import ReadFilter
from burstbus.store.sqlite import SQLiteEventLog
from tests.packets import voevent
from tests.signing.conftest import Keys
from tests.signing.keys import armour_in, home, root_bytes, signed_by_hand

GCN = "ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_1234"
OURS = "ivo://fsc.example/notices#sb1_ECL-1"


class Rig:
    """A SQLite log and an ingest with signatures on, over a keyring built from ``keys``."""

    def __init__(self, log: SQLiteEventLog, ingest: Ingest, ring: Path):
        self.log = log
        self.ingest = ingest
        self.ring = ring

    async def accepted(self, ivorn: str) -> dict[str, Any]:
        found = await self.log.find(accepted_event_id(ivorn))
        assert found is not None, ivorn
        return dict(found.data)

    async def rejections(self) -> list[dict[str, Any]]:
        return [dict(e.data) for e in await self.log.read(0, ReadFilter.of(types=("voevent.rejected",)))]


@pytest.fixture
async def rig(tmp_path: Path, keys: Keys, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    rules = getattr(request, "param", None) or (
        SignatureRule(name="gcn via xmpp", action="require", ivorns=("ivo://nasa.gsfc.gcn",), sources=("xmpp:*",),
                      keys=(keys.author_fpr,)),
        SignatureRule(name="gcn", action="verify", ivorns=("ivo://nasa.gsfc.gcn",), keys=(keys.author_fpr,)),
    )
    ring = keys.keyring(tmp_path / "keyring")
    section = SignaturesSection(enabled=True, keyring=ring, sign_with=keys.centre_fpr, rules=tuple(rules))
    signatures = Signatures.open(section, tmp_path)
    authority = AuthorityPolicy.of(AuthoritySection(), trigger_streams=["ivo://fsc.example/trigger"], own=["ivo://fsc.example/"])
    log = await SQLiteEventLog.open(tmp_path / "log.sqlite")
    ingest = Ingest(log, authority=authority, signatures=signatures)
    try:
        yield Rig(log, ingest, ring)
    finally:
        await ingest.close()  # stops the gpg-agent signing started in the keyring
        await log.close()
        home(ring).kill_agents()


def author_signed(keys: Keys, ivorn: str = GCN, **packet: Any) -> bytes:
    """A packet its author signed with the gpg command line, following Comet's documentation."""
    raw = voevent(ivorn, **packet)
    return signed_by_hand(raw, keys.author.detach_sign(root_bytes(raw), keys.author_fpr))


async def test_an_independent_packet_signed_with_the_gpg_command_line_is_verified(rig: Rig, keys: Keys) -> None:
    packet = author_signed(keys)
    result = await rig.ingest.submit(packet, via="xmpp", peer="gcn@gcn.example")
    assert result.outcome == "accepted", result
    data = await rig.accepted(GCN)
    assert xml_bytes(data) == packet  # the exact bytes, comment and all
    signature = data["signature"]
    assert signature["status"] == "valid" and signature["fingerprint"] == keys.author_fpr
    assert signature["signer"] == "GRB author <author@observatory.example>"
    assert signature["rules"] == ["gcn via xmpp", "gcn"] and "detail" not in signature


async def test_one_byte_changed_after_signing_is_refused_where_required(rig: Rig, keys: Keys) -> None:
    packet = author_signed(keys)
    changed = packet.replace(b"<C1>123.456</C1>", b"<C1>123.457</C1>")
    assert len(changed) == len(packet) and changed != packet
    refused = await rig.ingest.submit(changed, via="xmpp", peer="gcn@gcn.example")
    assert refused.outcome == "rejected" and refused.code == "signature"
    assert refused.reason is not None and "signature rule 'gcn via xmpp' requires a valid signature" in refused.reason
    assert "the signature is invalid: the signature does not match the bytes" in refused.reason
    [rejected] = await rig.rejections()
    assert rejected["code"] == "signature" and rejected["ivorn"] == GCN and rejected["signature"]["status"] == "invalid"
    # Where the rules only verify, the same bytes are accepted and recorded invalid.
    recorded = await rig.ingest.submit(changed, via="kafka", peer="gcn.classic.voevent.SWIFT_BAT_GRB_POS_ACK")
    assert recorded.outcome == "accepted"
    assert (await rig.accepted(GCN))["signature"]["status"] == "invalid"


async def test_unsigned_untrusted_and_unknown_keys_are_recorded_and_refused_where_required(rig: Rig, keys: Keys) -> None:
    unsigned = voevent(GCN)
    assert (await rig.ingest.submit(unsigned, via="xmpp", peer="gcn@gcn.example")).code == "signature"
    assert (await rig.ingest.submit(unsigned, via="vtp", peer="192.0.2.7")).outcome == "accepted"
    assert (await rig.accepted(GCN))["signature"] == {"status": "none", "rules": ["gcn"]}
    # A good signature by a key of the keyring that the rule does not trust (ours, on a GCN IVORN).
    ivorn = "ivo://nasa.gsfc.gcn/SWIFT#by-the-centre"
    raw = voevent(ivorn)
    by_centre = signed_by_hand(raw, keys.centre.detach_sign(root_bytes(raw), keys.centre_fpr))
    refused = await rig.ingest.submit(by_centre, via="xmpp", peer="gcn@gcn.example")
    assert refused.code == "signature" and f"key {keys.centre_fpr} is not among the keys of rule 'gcn via xmpp'" in (refused.reason or "")
    # A key that is not in the keyring at all: untrusted, never fetched.
    ivorn = "ivo://other.example/x#1"
    raw = voevent(ivorn)
    stranger = signed_by_hand(raw, keys.stranger.detach_sign(root_bytes(raw), keys.stranger_fpr))
    assert (await rig.ingest.submit(stranger, via="vtp", peer="192.0.2.7")).outcome == "accepted"
    signature = (await rig.accepted(ivorn))["signature"]
    assert signature["status"] == "untrusted" and signature["fingerprint"] == keys.stranger_fpr
    assert "not in the keyring" in signature["detail"]
    # No rule selects it: a good signature by any key of the keyring is valid.
    ivorn = "ivo://other.example/x#2"
    assert (await rig.ingest.submit(author_signed(keys, ivorn), via="vtp", peer="192.0.2.7")).outcome == "accepted"
    assert (await rig.accepted(ivorn))["signature"]["status"] == "valid"


@pytest.mark.parametrize("comment,detail", [
    (b"<!--\n=====BEGIN PGP SIGNATURE=====\n\nbm90IGEgc2lnbmF0dXJl\n=abcd\n=====END PGP SIGNATURE=====\n-->",
     "readable OpenPGP signature"),
    (b"<!--\n=====BEGIN PGP SIGNATURE=====\n" + b"QUFB" * 10_000 + b"\n=====END PGP SIGNATURE=====\n-->", "at most 16,384"),
    (b"<!-- =====BEGIN PGP SIGNATURE===== and nothing else -->", "does not hold one"),
], ids=["garbage", "huge", "no-end"])
async def test_a_malformed_signature_is_invalid_or_refused_never_a_crash(rig: Rig, comment: bytes, detail: str) -> None:
    raw = voevent(GCN)
    close = raw.rindex(b">") + 1
    packet = raw[:close] + comment + raw[close:]
    refused = await rig.ingest.submit(packet, via="xmpp", peer="gcn@gcn.example")
    assert refused.code == "signature" and detail in (refused.reason or ""), refused
    assert (await rig.ingest.submit(packet, via="vtp", peer="192.0.2.7")).outcome == "accepted"
    signature = (await rig.accepted(GCN))["signature"]
    assert signature["status"] == "invalid" and detail in signature["detail"]


async def test_an_entity_bomb_with_a_signature_is_still_refused_by_the_examination(rig: Rig, keys: Keys) -> None:
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE v [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>\n'
            + author_signed(keys).split(b"?>", 1)[1])
    refused = await rig.ingest.submit(bomb, via="vtp", peer="192.0.2.7")
    assert refused.code == "doctype"


async def test_a_packet_burstbus_signed_verifies_with_gpg_verify_over_the_same_bytes(
        rig: Rig, keys: Keys, tmp_path: Path) -> None:
    rendered = voevent(OURS)
    result = await rig.ingest.submit(rendered, via="local", peer="notices")
    assert result.outcome == "accepted", result
    data = await rig.accepted(OURS)
    stored = xml_bytes(data)
    assert without_signature(stored) == rendered  # the render's bytes, plus one comment after the root
    assert b"</voe:VOEvent><!--\n=====BEGIN PGP SIGNATURE=====" in stored and b"-----" not in stored
    signature = data["signature"]
    assert (signature["status"], signature["fingerprint"], signature["signed_here"]) == ("valid", keys.centre_fpr, True)
    assert signature["signer"] == "FSC burstbus <burstbus@fsc.example>" and signature["created"].endswith("Z")
    # A telescope that has only our public key checks it with the gpg command line.
    (tmp_path / "packet.sig").write_bytes(armour_in(stored))
    (tmp_path / "packet.root").write_bytes(root_bytes(stored))
    assert root_bytes(stored) == root_bytes(rendered)  # the signed range is the render's root, untouched
    checked = keys.outsider.gpg("--status-fd", "1", "--verify", str(tmp_path / "packet.sig"), str(tmp_path / "packet.root"),
                                check=False)
    assert checked.returncode == 0, checked.stderr.decode()
    assert f"[GNUPG:] VALIDSIG {keys.centre_fpr}".encode() in checked.stdout
    # One byte changed in that range: gpg says BAD.
    (tmp_path / "packet.root").write_bytes(root_bytes(stored).replace(b"123.456", b"123.457"))
    bad = keys.outsider.gpg("--status-fd", "1", "--verify", str(tmp_path / "packet.sig"), str(tmp_path / "packet.root"),
                            check=False)
    assert bad.returncode != 0 and b"[GNUPG:] BADSIG" in bad.stdout
    # The publisher renders the same bytes again after a crash: the signed packet already
    # accepted is found (a duplicate), never signed a second time (new bytes: a conflict).
    again = await rig.ingest.submit(rendered, via="local", peer="notices")
    assert (again.outcome, again.seq) == ("duplicate", result.seq)
    # Our own notice coming back byte for byte (a Kafka topic we follow) is a duplicate too.
    assert (await rig.ingest.submit(stored, via="kafka", peer="gcn.notices.svom.voevent.eclairs")).outcome == "duplicate"
    assert await rig.rejections() == []


async def test_packets_of_other_local_sources_are_not_signed(rig: Rig) -> None:
    ivorn = "ivo://fsc.example/notices#test-event"
    assert (await rig.ingest.submit(voevent(ivorn), via="local", peer="test-events")).outcome == "accepted"
    data = await rig.accepted(ivorn)
    assert data["signature"] == {"status": "none"} and b"PGP" not in xml_bytes(data)


def _settings(tmp_path: Path, **signatures: Any) -> dict[str, Any]:
    return {"data": {"dir": str(tmp_path / "data")}, "signatures": {"enabled": True, **signatures}}


async def test_without_gpg_the_start_fails_naming_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(None, environ={}, overrides=_settings(tmp_path, gpg=str(tmp_path / "no-such-gpg")))
    with pytest.raises(StartupError) as caught:
        await Core.open(config)
    assert caught.value.setting == "signatures.gpg" and "was not found" in caught.value.problem
    assert not (tmp_path / "data" / "log.sqlite").exists()  # nothing was opened
    (tmp_path / "burstbus.toml").write_text(f'[signatures]\nenabled = true\ngpg = "{tmp_path}/no-such-gpg"\n')
    from burstbus.cli import main

    code = await _in_thread(main, ["--config", str(tmp_path / "burstbus.toml"), "--data-dir", str(tmp_path / "d"), "run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("burstbus: cannot start: [signatures] gpg: "), err


async def test_a_signing_key_missing_from_the_keyring_fails_the_start(tmp_path: Path, keys: Keys) -> None:
    ring = keys.keyring(tmp_path / "keyring", centre_secret=False)
    config = load_config(None, environ={}, overrides=_settings(tmp_path, keyring=str(ring), sign_with=keys.centre_fpr))
    try:
        with pytest.raises(StartupError) as caught:
            await Core.open(config)
        assert caught.value.setting == "signatures.sign_with" and "no secret key" in caught.value.problem
    finally:
        home(ring).kill_agents()


async def _in_thread(fn: Any, *args: Any) -> Any:
    """``burstbus.cli.main`` runs its own event loop: call it from a thread."""
    import asyncio

    return await asyncio.to_thread(fn, *args)


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("GnuPG homes and agents are tested on Linux", allow_module_level=True)
