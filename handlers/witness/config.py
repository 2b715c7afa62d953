"""``[witness]``: signed checkpoints of the log's head — how often, with which key, where to.

Off by default: a checkpoint speaks for the centre (its Ed25519 key), so an operator creates
the key (``burstbus witness keygen``), points ``key_file`` at it and turns the witness on.
The key itself is read when the witness starts (or a command needs it), not here: a key not
created yet must not stop ``burstbus witness keygen`` from running with this configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from burstbus.config import ConfigError

#: A log's name as it appears in the signed payload: printable ASCII without quotes or
#: backslashes, so its canonical JSON is the same in every encoder (documented bytes).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class WitnessSection:
    """``[witness]``: the centre signs its log's head and publishes it where others keep it."""

    #: Sign and publish checkpoints (needs ``key_file``). ``burstbus checkpoint``, ``evidence`` and
    #: ``verify --against`` work with the key (or public keys) whether or not this is on.
    enabled: bool = False
    #: The centre's Ed25519 private key (PEM, PKCS#8), readable by burstbus's user only (mode
    #: 0600; refused when group or others may read it). Create it with ``burstbus witness keygen``.
    key_file: Path | None = None
    #: Seconds between two signed checkpoints (none while nothing but checkpoints was appended);
    #: 0: only on demand (``burstbus checkpoint``, the bot's ``checkpoint``).
    interval: float = field(default=900.0, metadata={"minimum": 0.0})
    #: The log's name in every checkpoint (``fsc.svom.org``): with the hash of record 1, its identity.
    log_name: str = "burstbus"
    #: NATS subject every checkpoint is published on (the document's JSON); empty: not on NATS.
    nats_subject: str = "burstbus.checkpoints"
    #: XMPP rooms (bare JIDs, among ``[[xmpp.rooms]]``) that get every checkpoint.
    xmpp_rooms: tuple[str, ...] = ()
    #: Slack channels (among those the bot may post in) that get every checkpoint.
    slack_channels: tuple[str, ...] = ()
    #: A file that gets every checkpoint as one JSON line, appended and fsynced; put it where
    #: others copy it (a replicated share). Unset: no file.
    file: Path | None = None
    #: Public keys ``verify --against`` and ``verify-bundle`` also accept (a rotated key, the twin
    #: centre's): each a PEM file's path or the raw key in base64.
    trusted_keys: tuple[str, ...] = ()


def check_witness(section: WitnessSection) -> None:
    """Refuse what could never sign or publish; raises ``ConfigError`` naming the key."""
    if not _NAME.match(section.log_name):
        raise ConfigError("witness.log_name", "must be 1-128 characters of letters, digits and ._:/@+- "
                          f"(it is signed as it is), not {section.log_name!r}")
    if section.nats_subject and not _SUBJECT.match(section.nats_subject):
        raise ConfigError("witness.nats_subject", f"not a NATS subject to publish on (no wildcards): {section.nats_subject!r}")
    for i, room in enumerate(section.xmpp_rooms):
        if "@" not in room or "/" in room:
            raise ConfigError(f"witness.xmpp_rooms[{i}]", f"must be a room's bare JID (room@conference.example), not {room!r}")
    for i, channel in enumerate(section.slack_channels):
        if not channel.strip():
            raise ConfigError(f"witness.slack_channels[{i}]", "must not be empty")
    if section.enabled and section.key_file is None:
        raise ConfigError("witness.key_file", "is required when the witness is enabled (create a key: "
                          "burstbus witness keygen --key-file PATH)")
