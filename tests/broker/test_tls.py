"""VTP over TLS, with real peers: ``openssl s_client`` as an author (binary VTP framing, the ACK
read back), burstbus's own client (in process and ``burstbus publish`` as a process), two
burstbus nodes (one subscribing upstream to the other's TLS subscriber port with a client
certificate, the host name checked), and a ``twistd comet`` subscriber on the plain port beside
the TLS one.

An author known by its verified client certificate is the authority source
``vtp-cert:<subject CN>``: granted a prefix, it publishes there and nowhere else, while the
same packet from the same address without the certificate is refused. A certificate from
another CA, no certificate where one is required and a plain-TCP client on the TLS port are
refused and recorded (``voevent.rejected``, code ``tls``), logged once per connection, and the
broker goes on serving.

The certificates are made here with ``cryptography`` (a test CA, this node's certificate for
``localhost`` and 127.0.0.1, client certificates, and a second CA nobody trusts).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import struct
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from burstbus.broker.client import publish, subscribe
from burstbus.broker.tls import stdlib_client_context
from burstbus.config import ConfigError, load_config
from tests.broker.harness import (
    DEADLINE,
    Node,
    Processes,
    comet_filename,
    comet_subscriber,
    exchange,
    frame,
    transport,
    unique_ivorn,
    wait_for,
)
from tests.packets import voevent

pytestmark = pytest.mark.asyncio(loop_scope="session")

PREFIX = "ivo://gft.test/"


# -- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server: Pair  # localhost, 127.0.0.1
    gft: Pair  # client, CN=gft.test
    other: Pair  # client of the same CA, CN=intruder.test
    node_b: Pair  # client, CN=node-b.test (the second burstbus node)
    foreign_ca: Path
    foreign: Pair  # client, CN=gft.test, signed by the foreign CA


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Any) -> Pair:
    pair = Pair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return pair


def _ca(directory: Path, stem: str, cn: str) -> tuple[Pair, x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, stem, cert, key), cert, key


def _leaf(directory: Path, stem: str, cn: str, ca: tuple[x509.Certificate, Any], *, server: bool) -> Pair:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if server:
        import ipaddress

        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return _write(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
    ca, ca_cert, ca_key = _ca(directory, "ca", "burstbus VTP test CA")
    foreign_ca, foreign_cert, foreign_key = _ca(directory, "foreign-ca", "some other CA")
    return Certificates(
        ca=ca.cert,
        server=_leaf(directory, "server", "localhost", (ca_cert, ca_key), server=True),
        gft=_leaf(directory, "gft", "gft.test", (ca_cert, ca_key), server=False),
        other=_leaf(directory, "intruder", "intruder.test", (ca_cert, ca_key), server=False),
        node_b=_leaf(directory, "node-b", "node-b.test", (ca_cert, ca_key), server=False),
        foreign_ca=foreign_ca.cert,
        foreign=_leaf(directory, "foreign", "gft.test", (foreign_cert, foreign_key), server=False),
    )


def tls_options(certs: Certificates, **more: Any) -> dict[str, Any]:
    return {"tls_certificate": str(certs.server.cert), "tls_key": str(certs.server.key),
            "tls_client_ca": str(certs.ca), "receive_tls_port": 0, **more}


def tls_port(node: Node) -> int:
    assert node.vtp.receiver is not None
    return node.vtp.receiver.tls_port


# -- peers --------------------------------------------------------------------------------------


async def s_client(port: int, payload: bytes, certs: Certificates, client: Pair | None = None) -> tuple[int, bytes, str]:
    """``openssl s_client`` as a VTP author: the server's certificate and name checked, the
    framed packet on stdin, the decrypted answer on stdout (it exits when the broker closes)."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", "-CAfile",
            str(certs.ca), "-verify_return_error", "-verify_hostname", "localhost", "-quiet", "-nocommands"]
    if client is not None:
        args += ["-cert", str(client.cert), "-key", str(client.key)]
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(frame(payload)), DEADLINE)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out, err.decode(errors="replace")


def answer_of(out: bytes) -> tuple[str, str | None] | None:
    """(role, reason) of the one VTP frame in ``out``, or None when there is none."""
    if len(out) < 4:
        return None
    (length,) = struct.unpack("!i", out[:4])
    return transport(out[4 : 4 + length])


def context(certs: Certificates, client: Pair | None = None) -> Any:
    return stdlib_client_context(certs.ca, client.cert if client else None, client.key if client else None)


async def refusals(node: Node, code: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in await node.events("voevent.rejected") if e.data.get("code") == code]


# -- tests ------------------------------------------------------------------------------------


async def test_openssl_s_client_and_burstbus_clients_publish_over_tls(tmp_path: Path, certs: Certificates) -> None:
    node = await Node.start(tmp_path / "data", **tls_options(certs))
    try:
        port = tls_port(node)
        first = unique_ivorn("openssl")
        code, out, err = await s_client(port, voevent(first), certs)
        assert answer_of(out) == ("ack", None), (code, out, err)

        second = unique_ivorn("client")
        answer = await publish("127.0.0.1", port, voevent(second), tls=context(certs), server_name="localhost")
        assert answer.acknowledged, answer.reason

        third = unique_ivorn("cli")
        path = tmp_path / "cli.xml"
        path.write_bytes(voevent(third))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "burstbus.cli", "--data-dir", str(tmp_path / "cli-data"), "publish", str(path),
            "--to", f"127.0.0.1:{port}", "--ca", str(certs.ca), "--server-name", "localhost", cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
        )
        cli_out, _ = await asyncio.wait_for(proc.communicate(), DEADLINE)
        assert proc.returncode == 0 and cli_out.decode().startswith("ACK"), cli_out.decode()

        accepted = {e.data["ivorn"]: e for e in await node.events("voevent.accepted")}
        for ivorn in (first, second, third):
            event = accepted[ivorn]
            assert event.actor == "vtp:127.0.0.1", event.actor  # no client certificate: known by address
            assert event.data["tls"]["protocol"].startswith("TLS")
        # the plain-TCP author port beside it is unchanged
        assert await exchange(node.receive_port, frame(voevent(unique_ivorn("plain")))) == ("ack", None)
        # a broker certificate the client does not trust is refused by burstbus's client
        with pytest.raises(OSError):
            await publish("127.0.0.1", port, voevent(unique_ivorn("x")),
                          tls=stdlib_client_context(certs.foreign_ca, None, None), server_name="localhost")
        # … and so is one for another name
        with pytest.raises(OSError):
            await publish("127.0.0.1", port, voevent(unique_ivorn("x")), tls=context(certs), server_name="gft.test")
    finally:
        await node.stop()


async def test_a_client_certificate_granted_a_prefix_publishes_under_it_and_nowhere_else(
    tmp_path: Path, certs: Certificates
) -> None:
    authority = {"reserved": [PREFIX], "grants": [{"source": "vtp-cert:gft.test", "prefixes": [PREFIX]}]}
    node = await Node.start(tmp_path / "data", sections={"authority": authority}, **tls_options(certs))
    try:
        port = tls_port(node)
        mine = f"{PREFIX}alerts#{uuid.uuid4().hex[:12]}"
        code, out, err = await s_client(port, voevent(mine), certs, certs.gft)
        assert answer_of(out) == ("ack", None), (code, out, err)
        [event] = [e for e in await node.events("voevent.accepted") if e.data["ivorn"] == mine]
        assert event.actor == "vtp-cert:gft.test" and event.data["via"] == "vtp-cert"
        assert event.data["peer"] == "gft.test" and event.data["address"] == "127.0.0.1"
        assert event.data["tls"]["certificate"]["subject"] == "CN=gft.test"
        assert event.data["tls"]["certificate"]["issuer"] == "CN=burstbus VTP test CA"

        # with burstbus's client and the same certificate, outside its grant: refused
        elsewhere = unique_ivorn("elsewhere")
        answer = await publish("127.0.0.1", port, voevent(elsewhere), tls=context(certs, certs.gft), server_name="localhost")
        assert not answer.acknowledged and "authority" in answer.reason
        assert "vtp-cert:gft.test may publish only under ivo://gft.test/" in answer.reason

        # the same prefix without the certificate (the address only), or with another CN of the
        # same CA: refused, whatever the packet says about its author
        for client in (None, certs.other):
            ivorn = f"{PREFIX}alerts#{uuid.uuid4().hex[:12]}"
            answer = await publish("127.0.0.1", port, voevent(ivorn), tls=context(certs, client), server_name="localhost")
            assert not answer.acknowledged and "(authority)" in answer.reason, answer.reason
        assert [r["peer"] for r in await refusals(node, "authority")] == ["gft.test", "127.0.0.1", "intruder.test"]
    finally:
        await node.stop()


async def test_a_wrong_certificate_none_and_a_plain_tcp_client_are_refused_and_recorded(
    tmp_path: Path, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    node = await Node.start(tmp_path / "data", **tls_options(certs, receive_client_certificate="required"))
    try:
        port = tls_port(node)
        with caplog.at_level(logging.WARNING, logger="burstbus.broker.receiver"):
            # a certificate from another CA (with the very CN that is granted elsewhere)
            _, out, _ = await s_client(port, voevent(unique_ivorn("foreign")), certs, certs.foreign)
            assert answer_of(out) is None
            # no certificate where one is required
            _, out, _ = await s_client(port, voevent(unique_ivorn("none")), certs)
            assert answer_of(out) is None
            # a plain-TCP author on the TLS port
            plain = unique_ivorn("plain")
            assert await exchange(port, frame(voevent(plain))) is None
            await wait_for(lambda: _count(node, "tls", 3), "three tls refusals")
        recorded = await refusals(node, "tls")
        assert len(recorded) == 3, recorded
        by_kind = {("foreign" if "some other CA" in r["reason"] else "plain" if "not TLS" in r["reason"] else "none"): r
                   for r in recorded}
        assert set(by_kind) == {"foreign", "none", "plain"}, [r["reason"] for r in recorded]
        assert "CN=gft.test" in by_kind["foreign"]["reason"] and "not signed by a trusted CA" in by_kind["foreign"]["reason"]
        assert "certificate" in by_kind["none"]["reason"]
        assert plain in by_kind["plain"]["excerpt_xml"]  # what the plain-TCP client sent, for the audit
        assert all(r["via"] == "vtp" and r["peer"] == "127.0.0.1" for r in recorded)
        refused_lines = [r for r in caplog.records if "refused on the TLS port" in r.getMessage()]
        assert len(refused_lines) == 3, [r.getMessage() for r in refused_lines]  # once per connection
        assert node.vtp.receiver is not None and node.vtp.receiver.stats.outcomes["tls"] == 3

        # the broker goes on: the right certificate is served
        code, out, err = await s_client(port, voevent(unique_ivorn("after")), certs, certs.gft)
        assert answer_of(out) == ("ack", None), (code, out, err)
    finally:
        await node.stop()


async def _count(node: Node, code: str, n: int) -> bool:
    return len(await refusals(node, code)) >= n


async def test_two_nodes_over_tls_and_a_comet_subscriber_on_the_plain_port_beside_it(
    tmp_path: Path, certs: Certificates, procs: Processes
) -> None:
    a = await Node.start(
        tmp_path / "a", **tls_options(certs, receive_tls_port=None, broadcast_tls_port=0,
                                      broadcast_client_certificate="required"),
    )
    b = c = None
    received: list[str] = []
    follower: asyncio.Task[None] | None = None
    try:
        assert a.vtp.broadcaster is not None
        a_tls = a.vtp.broadcaster.tls_port
        upstream = {"host": "127.0.0.1", "port": a_tls, "tls": True, "ca": str(certs.ca), "server_name": "localhost",
                    "certificate": str(certs.node_b.cert), "key": str(certs.node_b.key)}
        b = await Node.start(tmp_path / "b", upstreams=[upstream], upstream_max_delay=1.0)
        # the host name is checked: the same broker under a name its certificate does not carry is refused
        c = await Node.start(tmp_path / "c", receive=False, broadcast=False, upstream_max_delay=1.0,
                             upstreams=[{**upstream, "server_name": "broker.elsewhere.test"}])
        saved = comet_subscriber(procs, tmp_path, a.broadcast_port)  # plain TCP, beside the TLS port

        async def follow() -> None:
            await subscribe("127.0.0.1", a_tls, local_ivo="ivo://test/cli-tls", tls=context(certs, certs.gft),
                            server_name="localhost", on_event=lambda ivorn, raw: received.append(ivorn))

        follower = asyncio.create_task(follow())
        await a.wait_subscribers(3)  # node b, the Comet subscriber, burstbus's client
        tls_subscribers = [s for s in a.vtp.broadcaster.subscribers() if s.tls]
        assert sorted(s.certificate or "" for s in tls_subscribers) == ["CN=gft.test", "CN=node-b.test"]
        assert c.vtp.upstreams is not None
        await wait_for(lambda: c.vtp.upstreams.stats()[0].tls_failures >= 1, "node c's TLS failure")
        assert not c.vtp.upstreams.stats()[0].connected

        ivorn = unique_ivorn("relayed")
        assert await exchange(a.receive_port, frame(voevent(ivorn))) == ("ack", None)

        async def on_b() -> bool:
            return any(e.data["ivorn"] == ivorn for e in await b.events("voevent.accepted"))

        await wait_for(on_b, "the packet on node b, through its TLS upstream")
        [event] = [e for e in await b.events("voevent.accepted") if e.data["ivorn"] == ivorn]
        assert event.actor == f"vtp-upstream:127.0.0.1:{a_tls}"
        await wait_for(lambda: (saved / comet_filename(ivorn)).exists(), "the packet at the Comet subscriber")
        await wait_for(lambda: ivorn in received, "the packet at burstbus's TLS subscriber")
        assert await c.events("voevent.accepted") == []

        # a subscriber without a client certificate is not one
        refused = a.vtp.broadcaster.factory.tls_refused
        with pytest.raises((OSError, asyncio.IncompleteReadError)):
            reader, writer = await asyncio.open_connection("127.0.0.1", a_tls, ssl=context(certs), server_hostname="localhost")
            try:
                await asyncio.wait_for(reader.readexactly(4), DEADLINE)
            finally:
                writer.close()
        await wait_for(lambda: a.vtp.broadcaster.factory.tls_refused > refused, "the refused subscriber counted")
        assert len(a.vtp.broadcaster.subscribers()) == 3
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        for node in (c, b, a):
            if node is not None:
                await node.stop()


async def test_tls_configuration_is_checked_with_the_key_at_fault(tmp_path: Path, certs: Certificates) -> None:
    def problem(**vtp: Any) -> tuple[str, str]:
        with pytest.raises(ConfigError) as caught:
            load_config(environ={}, overrides={"vtp": vtp, "nats": {"enabled": False}})
        return caught.value.key, str(caught.value)

    assert problem(receive_tls_port=0)[0] == "vtp.tls_certificate"
    assert problem(tls_certificate=str(certs.server.cert))[0] == "vtp.tls_key"
    key, text = problem(tls_certificate=str(certs.server.cert), tls_key=str(certs.gft.key))
    assert key == "vtp.tls_key" and "is not the key of the certificate" in text
    key, text = problem(tls_certificate=str(tmp_path / "missing.crt"), tls_key=str(certs.server.key))
    assert key == "vtp.tls_certificate" and "cannot read" in text
    assert problem(tls_certificate=str(certs.server.key), tls_key=str(certs.server.key))[0] == "vtp.tls_certificate"
    assert problem(tls_certificate=str(certs.server.cert), tls_key=str(certs.server.key), receive_tls_port=0,
                   receive_client_certificate="required")[0] == "vtp.tls_client_ca"
    assert problem(receive_plain=False)[0] == "vtp.receive_plain"
    assert problem(upstreams=[{"host": "h", "ca": str(certs.ca)}])[0] == "vtp.upstreams[0].tls"
    assert problem(upstreams=[{"host": "h", "tls": True, "certificate": str(certs.gft.cert)}])[0] == "vtp.upstreams[0].key"
    assert problem(upstreams=[{"host": "h", "tls": True, "ca": str(certs.gft.key)}])[0] == "vtp.upstreams[0].ca"
    ok = load_config(environ={}, overrides={"vtp": tls_options(certs, receive_plain=False), "nats": {"enabled": False}})
    assert ok.vtp.receive_tls_port == 0 and ok.vtp.tls_client_ca == certs.ca


async def test_a_certificate_source_is_its_own_transport_in_grants() -> None:
    from burstbus.authority import AuthorityGrant, AuthorityPolicy
    from burstbus.broker.tls import PeerCertificate, identify

    policy = AuthorityPolicy(reserved=[PREFIX], grants=[
        AuthorityGrant("vtp-cert:*.svom.test", ("ivo://svom.test/",)),
        AuthorityGrant("vtp:127.0.0.1", (PREFIX,)),
    ])
    assert policy.refusal("vtp-cert", "gft.svom.test", "ivo://svom.test/gft#1") is None
    assert policy.refusal("vtp-cert", "gft.svom.test", f"{PREFIX}x#1") is not None  # the address's grant is not its
    assert policy.refusal("vtp", "127.0.0.1", "ivo://svom.test/gft#1") is not None  # nor the other way round

    def cert(cn: str | None) -> PeerCertificate:
        return PeerCertificate(cn, f"CN={cn}", "CN=ca", "1", "00", "2030-01-01T00:00:00+00:00")

    assert identify(cert("gft.svom.test")) == "gft.svom.test"
    assert identify(cert(None)) is None and identify(cert("  ")) is None and identify(cert("a\nb")) is None
