"""A real Prosody on loopback for the XMPP tests, and real slixmpp clients as Burst Advocates.

:class:`Prosody` writes a private configuration (127.0.0.1 only, a free c2s port, s2s off,
its own data directory and pid file, a test CA and a server certificate whose SAN covers the
host and the MUC component), registers accounts with ``prosodyctl`` and runs ``prosody -F``
as a child process that is stopped by its pid. ``restart`` keeps the port and the data, for
the outage tests.

:class:`User` is an ordinary slixmpp client (STARTTLS, the test CA) that records what it
receives, the way a phone client would show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from tests import ports
from tests.waiting import DEADLINE, wait_for

log = logging.getLogger(__name__)

DOMAIN = "localhost"
MUC = f"conference.{DOMAIN}"
PASSWORD = "pw-Test-1234"

CONFIG = """
-- burstbus test server: loopback only, everything under {root}
run_as_root = true
daemonize = false
pidfile = "{root}/prosody.pid"
data_path = "{root}/data"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{root}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
s2s_interfaces = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = true
authentication = "internal_hashed"
storage = "internal"
modules_enabled = {{ "tls"; "saslauth"; "roster"; "disco"; "ping"; "carbons"; "smacks"; "mam"; "offline"; "posix"; }}
modules_disabled = {{ "s2s"; "http"; "admin_shell"; "admin_adhoc"; "register"; }}
-- a short hibernation so that a dead bot session is not kept for long
smacks_hibernation_time = 30
ssl = {{ certificate = "{root}/certs/server.crt"; key = "{root}/certs/server.key"; }}
VirtualHost "{domain}"
Component "{muc}" "muc"
    modules_enabled = {{ "muc_mam" }}
    muc_room_locking = false
    muc_room_default_history_length = 20
    restrict_room_creation = false
"""


def free_port() -> int:
    return ports.free_port()  # a block of its own per xdist worker (tests/ports.py)


def make_certificates(directory: Path, names: list[str]) -> Path:
    """A test CA and a server certificate for ``names`` signed by it; returns the CA file."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
    )

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
        "-days", "30", "-subj", "/CN=burstbus test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={names[0]}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "30", "-extfile", str(ext))
    os.chmod(key, 0o644)
    return ca_crt


class Prosody:
    """One Prosody server process; stopped by pid."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.port = port or free_port()
        self.config = root / "prosody.cfg.lua"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ca_file = root / "certs" / "ca.crt"

    def prepare(self) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        make_certificates(self.root / "certs", [DOMAIN, MUC])
        self.config.write_text(CONFIG.format(root=self.root, port=self.port, domain=DOMAIN, muc=MUC))

    def register(self, user: str, password: str = PASSWORD) -> str:
        subprocess.run(["prosodyctl", "--config", str(self.config), "register", user, DOMAIN, password],
                       check=True, capture_output=True, timeout=DEADLINE)
        return f"{user}@{DOMAIN}"

    async def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        out = open(self.root / "stdout.log", "ab")
        self.proc = subprocess.Popen(["prosody", "-F", "--config", str(self.config)], stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root)
        out.close()

        async def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"prosody exited ({self.proc.returncode}); see {self.root / 'prosody.log'}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await wait_for(listening, f"prosody to listen on {self.port}")

    def stop(self) -> None:
        """SIGTERM to our pid, SIGKILL if it does not go."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    async def stop_async(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    async def restart(self) -> None:
        await self.stop_async()
        await self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        path = self.root / "prosody.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Received:
    """One message as a user's client shows it."""

    kind: str  # chat, groupchat, normal, headline, error
    frm: str
    body: str
    id: str
    xml: Any = field(repr=False, default=None)


class User(slixmpp.ClientXMPP):
    """A Burst Advocate's (or telescope's, or attacker's) ordinary client."""

    def __init__(self, jid: str, server: Prosody, password: str = PASSWORD):
        super().__init__(jid, password)
        self.prosody = server
        self.enable_direct_tls = False
        self.enable_plaintext = False
        self.ca_certs = server.ca_file
        for plugin in ("xep_0030", "xep_0045", "xep_0199", "xep_0280", "xep_0297", "xep_0203", "xep_0004"):
            self.register_plugin(plugin)
        self.received: list[Received] = []
        self.started = asyncio.Event()
        self.add_event_handler("session_start", self._started)
        self.add_event_handler("message", self._message)
        self.add_event_handler("groupchat_message", self._groupchat)

    async def _started(self, _: Any) -> None:
        self.send_presence()
        self.started.set()

    def _message(self, msg: Any) -> None:
        if msg["type"] == "groupchat":
            return  # _groupchat has it
        self.received.append(Received(msg["type"], str(msg["from"]), msg["body"], msg["id"], msg.xml))

    def _groupchat(self, msg: Any) -> None:
        self.received.append(Received("groupchat", str(msg["from"]), msg["body"], msg["id"], msg.xml))

    async def login(self) -> User:
        self.connect("127.0.0.1", self.prosody.port)
        await asyncio.wait_for(self.started.wait(), DEADLINE)
        return self

    async def logout(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.disconnect(wait=1.0), 10)
        filters = getattr(self, "_run_out_filters", None)  # slixmpp leaves it pending
        if filters is not None and not filters.done():
            filters.cancel()

    async def join(self, room: str, nick: str, history: int = 0) -> None:
        """Join ``room``; ``history``: how many earlier messages the room should replay."""
        options: dict[str, Any] = {"maxstanzas": history} if history else {"maxchars": 0}
        await self.plugin["xep_0045"].join_muc_wait(slixmpp.JID(room), nick, timeout=DEADLINE, **options)

    def say(self, to: str, body: str, kind: str = "chat") -> str:
        msg = self.make_message(mto=to, mbody=body, mtype=kind)
        msg.send()
        return str(msg["id"])

    def chats(self, frm: str | None = None) -> list[Received]:
        return [r for r in self.received if r.kind in ("chat", "normal") and (frm is None or r.frm.split("/")[0] == frm)]

    def room_messages(self, room: str) -> list[Received]:
        return [r for r in self.received if r.kind == "groupchat" and r.frm.split("/")[0] == room]

    async def wait_chat(self, frm: str, contains: str, count: int = 1) -> list[Received]:
        def found() -> list[Received]:
            hits = [r for r in self.chats(frm) if contains in r.body]
            return hits if len(hits) >= count else []

        return await wait_for(found, f"{self.boundjid.bare} to get a message from {frm} containing {contains!r}")

    async def wait_room(self, room: str, contains: str, count: int = 1) -> list[Received]:
        def found() -> list[Received]:
            hits = [r for r in self.room_messages(room) if contains in r.body]
            return hits if len(hits) >= count else []

        return await wait_for(found, f"{self.boundjid.bare} to see {contains!r} in {room}")


async def configure_room(owner: User, room: str, *, members_only: bool, whois_anyone: bool, members: list[str]) -> None:
    """Create/configure ``room`` through its owner with the MUC owner form, then add members."""
    muc = owner.plugin["xep_0045"]
    await owner.join(room, "owner")
    form = await muc.get_room_config(slixmpp.JID(room))
    values = {
        "muc#roomconfig_membersonly": members_only,
        "muc#roomconfig_whois": "anyone" if whois_anyone else "moderators",
        "muc#roomconfig_persistentroom": True,
        "muc#roomconfig_publicroom": False,
    }
    fields = form.get_fields()
    missing = [name for name in values if name not in fields]
    if missing:
        raise AssertionError(f"the server's room form has no {missing}")
    for name, value in values.items():
        fields[name]["value"] = value
    await muc.set_room_config(slixmpp.JID(room), form)
    for jid in members:
        try:
            await muc.set_affiliation(slixmpp.JID(room), "member", jid=slixmpp.JID(jid))
        except (IqError, IqTimeout) as exc:
            raise AssertionError(f"could not make {jid} a member of {room}: {exc}") from exc


def raw_message(to: str, inner: str, kind: str = "chat") -> str:
    """A message stanza as text (for stanzas an ordinary client would not build); send it
    with ``User.send_raw`` (the server stamps ``from``)."""
    return f'<message xmlns="jabber:client" to="{to}" type="{kind}" id="{uuid.uuid4().hex}">{inner}</message>'


def prosody_available() -> bool:
    return shutil.which("prosody") is not None and shutil.which("prosodyctl") is not None
