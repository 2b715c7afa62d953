"""The witness's commands: ``checkpoint``, ``witness keygen|key``, ``verify --against``,
``evidence`` and ``verify-bundle`` (the logic is in :mod:`burstbus.handlers.witness`).

* ``burstbus checkpoint [-o FILE]``: sign the log's head now, record it (the running service's
  witness publishes it, like its own), print the document.
* ``burstbus witness keygen [--key-file PATH]``: a new Ed25519 key (mode 0600, never over an
  existing file) and its public half beside it; ``burstbus witness key``: the public key to give
  to others (its id, base64 and PEM).
* ``burstbus verify --against CHECKPOINT [--public-key KEY]``: the log still extends every
  signed head in CHECKPOINT (a file — a document, the witness's JSON-lines file, ``burstbus log``
  output, a copied chat message — or the JSON itself); exit 1 naming where it does not.
* ``burstbus evidence BURST [-o FILE]``: the burst's evidence bundle; ``burstbus verify-bundle
  FILE [--public-key KEY]`` checks one without any database.

Which keys are trusted: ``--public-key`` (repeatable), ``[witness] trusted_keys``, and the
configured key's own public half. With none of them the key a checkpoint or bundle names is
used, and the output says that only its id, compared with the centre's published one, makes
the check mean anything.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from burstbus.component import StartupError
from burstbus.config import Config
from burstbus.handlers.witness.against import verify_against
from burstbus.handlers.witness.bundle import BundleError, manifest_of, verify_bundle
from burstbus.handlers.witness.checkpoint import (
    CheckpointError,
    SignedCheckpoint,
    documents_in,
    trusted_or_named,
)
from burstbus.handlers.witness.config import WitnessSection
from burstbus.handlers.witness.evidence import EvidenceError, make_bundle
from burstbus.handlers.witness.keys import PublicKey, SigningKey, WitnessKeyError, generate_key_file
from burstbus.handlers.witness.witness import NothingToSign, Signer, key_for
from burstbus.progress import Progress
from burstbus.service import open_log

EXIT_OK, EXIT_NO, EXIT_USAGE = 0, 1, 2

Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """``verify``'s options for checking against signed checkpoints."""
    parser.add_argument("--against", metavar="CHECKPOINT",
                        help="a file holding signed checkpoints (or a checkpoint's JSON): prove the log still extends them")
    _public_key_option(parser)


def _public_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--public-key", action="append", dest="public_keys", default=[], metavar="KEY",
                        help="a trusted public key: PEM file or base64 (repeatable; else [witness] trusted_keys and key_file)")


def add_parsers(commands: Any) -> dict[str, Command]:
    """Add this module's subcommands to the CLI's parser; their handlers by name."""
    p = commands.add_parser("checkpoint", help="sign the log's head now with the centre's key, record and print it")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="also write the checkpoint's JSON here")
    p = commands.add_parser("witness", help="the centre's signing key: create it, show its public half")
    sub = p.add_subparsers(dest="witness_command", required=True, metavar="WITNESS_COMMAND")
    k = sub.add_parser("keygen", help="create the Ed25519 key (mode 0600; never over an existing file)")
    k.add_argument("--key-file", type=Path, metavar="PATH", help="where (default: [witness] key_file)")
    k = sub.add_parser("key", help="print the public key others verify checkpoints with")
    k.add_argument("--key-file", type=Path, metavar="PATH", help="the key (default: [witness] key_file)")
    p = commands.add_parser("evidence", help="a burst's events with the hash chain to signed checkpoints, checkable offline")
    p.add_argument("burst", metavar="BURST", help="the burst id (sb26021102, S190518bb, swift-655721)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="where (default: standard output)")
    p = commands.add_parser("verify-bundle", help="check an evidence bundle (no database needed); exit 1 naming what fails")
    p.add_argument("file", type=Path, metavar="FILE")
    _public_key_option(p)
    return {"checkpoint": cmd_checkpoint, "witness": cmd_witness, "evidence": cmd_evidence, "verify-bundle": cmd_verify_bundle}


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _key(config: Config, command: str) -> SigningKey | None:
    try:
        return key_for(config.section(WitnessSection))
    except StartupError as exc:
        _say(f"burstbus {command}: [witness] key_file: {exc.problem}")
        return None


def trusted_keys(config: Config, given: list[str]) -> list[PublicKey]:
    """``--public-key`` values, ``[witness] trusted_keys`` and the configured key's public half."""
    section = config.section(WitnessSection)
    keys: dict[str, PublicKey] = {}
    for value in [*given, *section.trusted_keys]:
        key = PublicKey.parse(value)
        keys.setdefault(key.key_id, key)
    if section.key_file is not None:
        for path in (section.key_file, section.key_file.with_name(section.key_file.name + ".pub")):
            if path.is_file():
                try:
                    key = PublicKey.parse(str(path))
                except (WitnessKeyError, OSError):
                    continue
                keys.setdefault(key.key_id, key)
                break
    return list(keys.values())


def _named_warning(keys: list[PublicKey]) -> None:
    ids = ", ".join(k.key_id for k in keys)
    _say(f"WARNING: no trusted key given (--public-key, [witness] trusted_keys): checked with the key the "
         f"document names ({ids}); this proves nothing unless that id is the centre's published key id")


async def cmd_checkpoint(config: Config, args: argparse.Namespace) -> int:
    key = _key(config, "checkpoint")
    if key is None:
        return EXIT_NO
    event_log = await open_log(config)
    try:
        signed = await Signer(event_log, key, config.section(WitnessSection).log_name).sign(actor="cli:checkpoint")
    except NothingToSign as exc:
        _say(f"burstbus checkpoint: {exc}")
        return EXIT_NO
    finally:
        await event_log.close()
    text = signed.checkpoint.text()
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")
    again = "" if signed.new else " (this head was signed before: that checkpoint)"
    _say(f"signed {signed.checkpoint.summary()}; recorded at seq {signed.seq}{again}. A running service's witness "
         "publishes it; else its next start does.")
    return EXIT_OK


def _print_public(key: PublicKey) -> None:
    print(f"key id:     {key.key_id}")
    print(f"public key: {key.base64}   (Ed25519, raw 32 bytes in base64, as in every checkpoint)")
    print(key.pem, end="")


async def cmd_witness(config: Config, args: argparse.Namespace) -> int:
    path: Path | None = args.key_file or config.section(WitnessSection).key_file
    if path is None:
        _say(f"burstbus witness {args.witness_command}: say which key file: --key-file PATH, or [witness] key_file")
        return EXIT_USAGE
    try:
        if args.witness_command == "keygen":
            key = generate_key_file(path).public
            _say(f"new key in {path} (mode 0600: keep it so, and back it up); public key in {path}.pub")
        else:
            key = PublicKey.parse(str(path))
    except (WitnessKeyError, OSError) as exc:
        _say(f"burstbus witness {args.witness_command}: {exc}")
        return EXIT_NO
    _print_public(key)
    return EXIT_OK


def _checkpoints_from(value: str) -> list[SignedCheckpoint]:
    if value.lstrip().startswith("{"):
        text, where = value, "the JSON given"
    else:
        path = Path(value).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{value}: no such file (give a file holding a checkpoint, or the checkpoint's JSON)")
        text, where = path.read_text(encoding="utf-8", errors="replace"), value
    found = documents_in(text)
    if not found:
        raise CheckpointError(f"no signed checkpoint in {where}")
    return found


async def verify_against_command(config: Config, args: argparse.Namespace) -> int:
    """``burstbus verify --against CHECKPOINT``."""
    try:
        checkpoints = _checkpoints_from(args.against)
        keys, named = trusted_or_named(checkpoints, trusted_keys(config, args.public_keys))
    except (CheckpointError, WitnessKeyError) as exc:
        _say(f"burstbus verify: {exc}")
        return EXIT_USAGE
    if named:
        _named_warning(keys)
    log_name = config.section(WitnessSection).log_name
    for name in sorted({c.payload.log for c in checkpoints} - {log_name}):
        _say(f"note: a checkpoint names the log {name!r}; this configuration's is {log_name!r}")
    event_log = await open_log(config)
    progress = Progress("verifying", min(max(c.payload.seq for c in checkpoints), (await event_log.head()).seq))
    try:
        report = await verify_against(event_log, checkpoints, keys, progress=lambda n: progress.advance(n - progress.done))
    finally:
        progress.close()
        await event_log.close()
    for line in report.lines:
        print(line)
    return EXIT_OK if report.ok else EXIT_NO


async def cmd_evidence(config: Config, args: argparse.Namespace) -> int:
    key = _key(config, "evidence")
    if key is None:
        return EXIT_NO
    event_log = await open_log(config)
    signer = Signer(event_log, key, config.section(WitnessSection).log_name)

    async def sign_head() -> SignedCheckpoint:
        signed = await signer.sign(actor="cli:evidence", reason="evidence")
        _say(f"signed a new checkpoint for it: {signed.checkpoint.summary()} (recorded at seq {signed.seq})")
        return signed.checkpoint

    try:
        data, events, used = await make_bundle(event_log, args.burst, key, sign_head=sign_head)
    except EvidenceError as exc:
        _say(f"burstbus evidence: {exc}")
        return EXIT_NO
    finally:
        await event_log.close()
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        args.output.write_bytes(data)
    kinds = sorted({r.type for r in events})
    _say(f"evidence for {args.burst}: {len(events)} events ({', '.join(kinds)}), tied to {len(used)} signed "
         f"checkpoint(s) up to seq {used[-1].payload.seq}; {len(data)} bytes. Check: burstbus verify-bundle FILE")
    return EXIT_OK


async def cmd_verify_bundle(config: Config, args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
        trusted = trusted_keys(config, args.public_keys)
        named = not trusted
        if named:
            trusted = [PublicKey.from_base64(str(manifest_of(data).get("public_key", "")))]
            _named_warning(trusted)
        report = verify_bundle(data, trusted)
    except (OSError, WitnessKeyError) as exc:
        _say(f"burstbus verify-bundle: {exc}")
        return EXIT_USAGE
    except BundleError as exc:
        print(f"FAILED: {args.file}: {exc}")
        return EXIT_NO
    last = report.checkpoints[-1].payload
    print(f"ok: {args.file}: {len(report.events)} events of {report.burst} (bundle made {report.created_at}), "
          f"{report.records} records in {len(report.segments)} chain segment(s) ending at {len(report.checkpoints)} "
          f"checkpoint(s) signed by key {report.key_id} (log {last.log}, up to seq {last.seq}, signed {last.signed_at})")
    for note in report.notes:
        print(f"note: {note}")
    for record in report.events:
        print(f"  seq {record.seq:>8}  {record.recorded_at}  {record.type:<24} {record.stream:<24} {record.actor}")
    return EXIT_OK
