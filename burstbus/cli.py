"""``burstbus``: the one command-line program (run, demo, import, log, verify, authority, rebuild, replay,
publish, subscribe).

Exit codes: 0 success; 1 the command's own "no" (a damaged chain for ``verify``); 2 bad usage
or configuration (argparse's convention); 3 the data directory is held by a running service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from burstbus import __version__
from burstbus.acl import Acl
from burstbus.config import Config, ConfigError, load_config
from burstbus.events import RecordedEvent, normalise_time
from burstbus.ingest import Submission
from burstbus.progress import Progress
from burstbus.service import (
    Core,
    Service,
    ServiceRunning,
    data_dir_lock,
    open_log,
    run_service,
    service_running,
)
from burstbus.sources import SourceError, count_packets, iter_packets
from burstbus.store.base import EventLog, LogError, ReadFilter
from burstbus.store.projections.registry import all_projections
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.sqlite_thread import run_on_connection

EXIT_OK, EXIT_NO, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3
DEMO_DATA_DIR = Path("burstbus-demo")
IMPORT_BATCH = 500


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="burstbus", description="The GRB ground segment's event log and message bus.")
    parser.add_argument("--version", action="version", version=f"burstbus {__version__}")
    parser.add_argument("--config", type=Path, help="TOML configuration file (default: ./burstbus.toml if present)")
    parser.add_argument("--data-dir", type=Path, help="data directory (default: ./burstbus-data; env BURSTBUS_DATA_DIR)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="serve: the log, projections, handlers and configured transports")

    p = commands.add_parser("demo", help="serve and feed a scripted night of alerts (data in ./burstbus-demo unless --data-dir)")
    p.add_argument("--interval", type=float, default=4.0, metavar="SECONDS", help="pause between two steps (default 4)")
    p.add_argument("--rounds", type=int, default=0, metavar="N", help="rounds of bursts to play (default 0: until stopped)")
    p.add_argument("--seed", type=int, default=1, help="random seed for positions (default 1)")
    p.add_argument("--no-serve", action="store_true", help="only feed the log, then exit (a running service shows it)")

    p = commands.add_parser("import", help="ingest VOEvents from files, folders or tarballs")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--quiet", action="store_true", help="summary only, not one line per refused packet")

    p = commands.add_parser("log", help="print events as JSON lines")
    p.add_argument("--type", action="append", dest="types", metavar="TYPE", help="event type (repeatable)")
    p.add_argument("--stream", help="only this stream (burst id or IVORN stream)")
    p.add_argument("--since", help="recorded at or after this ISO-8601 time")
    p.add_argument("--until", help="recorded at or before this ISO-8601 time")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="only events after this seq")
    p.add_argument("--limit", type=int, help="at most this many events")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events as they are appended")
    p.add_argument("--output", "-o", type=Path, help="write to this file instead of standard output")

    commands.add_parser("verify", help="walk the hash chain; exit 1 naming the first damaged seq")
    commands.add_parser("authority", help="who may publish under which IVORNs, and who can make each telescope move")

    p = commands.add_parser("rebuild", help="drop projections and replay the log into them")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"projections (default all: {', '.join(x.name for x in all_projections())})")

    p = commands.add_parser("replay", help="build the projections as they stood at a time, into a separate database")
    p.add_argument("--until", required=True, help="ISO-8601 UTC time: what did the log know then?")
    p.add_argument("--out", type=Path, help="database to write (default: DATA_DIR/replay-<time>.sqlite)")
    p.add_argument("--bursts", type=int, default=20, help="how many bursts to list (default 20)")

    p = commands.add_parser("publish", help="send VOEvents to a VTP broker as an author; exit 1 on any NAK")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--to", metavar="HOST:PORT", help="the broker's author port (default: [vtp] receive_host:receive_port)")

    p = commands.add_parser("subscribe", help="receive VOEvents from a VTP broker; print or save them (Ctrl-C stops)")
    p.add_argument("address", metavar="HOST:PORT", help="the broker's subscriber port (port 8099 if omitted)")
    p.add_argument("--filter", action="append", dest="filters", default=[], metavar="XPATH",
                   help="XPath filter sent to the broker (repeatable; any one selecting is enough)")
    p.add_argument("--save", type=Path, metavar="DIR", help="write each packet to DIR/<ivorn>.xml")
    p.add_argument("--local-ivo", default="ivo://burstbus.local/subscriber", help="our IVORN in the VTP handshake")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + (1 if args.command in ("run", "demo") else 0), 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config, overrides={"data": {"dir": str(args.data_dir) if args.data_dir else None}})
    except ConfigError as exc:
        print(f"burstbus: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handler = COMMANDS[args.command]
    try:
        return asyncio.run(handler(config, args))
    except ServiceRunning as exc:
        print(f"burstbus: {exc}; stop it first", file=sys.stderr)
        return EXIT_BUSY
    except LogError as exc:  # a log that cannot be opened or read (a broken file, a server down)
        print(f"burstbus: {exc}", file=sys.stderr)
        return EXIT_NO
    except KeyboardInterrupt:
        return 130


async def cmd_run(config: Config, args: argparse.Namespace) -> int:
    await run_service(config)
    return EXIT_OK


async def cmd_demo(config: Config, args: argparse.Namespace) -> int:
    from burstbus.config import DataSection, with_data_dir
    from burstbus.demo import feed

    if args.data_dir is None and config.data_dir == DataSection().dir:
        config = with_data_dir(config, DEMO_DATA_DIR)
    if args.rounds < 0 or args.interval < 0:
        print("burstbus demo: --rounds and --interval must not be negative", file=sys.stderr)
        return EXIT_USAGE
    print(f"burstbus demo: data in {config.data_dir}", file=sys.stderr)
    http = config.http
    if http.enabled and not (http.token or http.read_token or http.public_read) and not args.no_serve:
        # The audit page and trigger data need a read token; a demo makes one for this run
        # (never public by default, even here) and says how to sign in with it.
        import secrets
        from dataclasses import replace

        token = secrets.token_urlsafe(12)
        config = config.with_section("http", replace(http, read_token=token))
        print(f"burstbus demo: audit log and triggers: sign in at {http.link_base()}/signin with the read token {token}",
              file=sys.stderr)
    if args.no_serve:
        core = await Core.open(config)
        try:
            await feed(core.ingest, core.log, interval=args.interval, rounds_=args.rounds or 1, seed=args.seed)
            if not service_running(config.data_dir):
                await core.catch_up()
        finally:
            await core.close()
        return EXIT_OK

    def setup(service: Service) -> None:
        core = service.core

        async def feeder() -> None:
            await feed(core.ingest, core.log, interval=args.interval, rounds_=args.rounds, seed=args.seed,
                       say=lambda line: logging.getLogger("burstbus.demo").info("%s", line))
            await asyncio.Event().wait()  # done feeding; keep serving until stopped

        service.add("demo", feeder)

    await run_service(config, setup=setup)
    return EXIT_OK


async def cmd_import(config: Config, args: argparse.Namespace) -> int:
    paths: list[Path] = args.paths
    core = await Core.open(config)
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    refused: list[tuple[str, str]] = []
    progress = Progress("importing", count_packets(paths))
    status = EXIT_OK
    try:
        batch: list[Submission] = []

        async def flush() -> None:
            results = await core.ingest.submit_many(batch)
            for item, result in zip(batch, results, strict=True):
                outcomes[result.outcome] += 1
                if result.outcome == "rejected":
                    reasons[result.code or "?"] += 1
                    refused.append((item.peer, result.reason or ""))
            progress.advance(len(batch))
            batch.clear()

        try:
            for packet in iter_packets(paths, config.ingest.max_bytes):
                batch.append(Submission(packet.raw, "import", packet.label))
                if len(batch) >= IMPORT_BATCH:
                    await flush()
        except SourceError as exc:
            print(f"burstbus import: {exc}", file=sys.stderr)
            status = EXIT_NO
        if batch:
            await flush()
        progress.close()
        if not service_running(config.data_dir):
            await core.catch_up()
    finally:
        await core.close()
    if not args.quiet:
        for label, reason in refused:
            print(f"refused  {label}: {reason}")
    total = sum(outcomes.values())
    print(
        f"{total} packets: {outcomes['accepted']} accepted, {outcomes['duplicate']} duplicates "
        f"(already in the log), {outcomes['rejected']} refused"
    )
    for code, n in reasons.most_common():
        print(f"  refused ({code}): {n}")
    return status


async def cmd_log(config: Config, args: argparse.Namespace) -> int:
    try:
        since = normalise_time(args.since) if args.since else None
        until = normalise_time(args.until) if args.until else None
    except ValueError as exc:
        print(f"burstbus log: bad time: {exc}", file=sys.stderr)
        return EXIT_USAGE
    core_log = await open_log(config)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    flt = ReadFilter.of(args.types, args.stream, since, until)
    # --follow: the log's own catch-up-then-live subscription; else the stored events only.
    batches = core_log.subscribe(args.after, flt) if args.follow else _stored_batches(core_log, args.after, flt)
    written = 0
    try:
        async for batch in batches:
            room = len(batch) if args.limit is None else args.limit - written
            for record in batch[:room]:
                out.write(json.dumps(record.to_json_dict(), ensure_ascii=False) + "\n")
            out.flush()
            written += min(room, len(batch))
            if args.limit is not None and written >= args.limit:
                break
    except BrokenPipeError:
        pass
    finally:
        if out is not sys.stdout:
            out.close()
        await core_log.close()
    return EXIT_OK


async def _stored_batches(log_: EventLog, after: int, flt: ReadFilter) -> AsyncIterator[list[RecordedEvent]]:
    """The stored events after ``after``, in pages, ending at the current head."""
    while records := await log_.read(after, flt, 1000):
        yield records
        after = records[-1].seq


async def cmd_verify(config: Config, args: argparse.Namespace) -> int:
    core_log = await open_log(config)
    progress = Progress("verifying", (await core_log.head()).seq)
    try:
        result = await core_log.verify(lambda n: progress.advance(n - progress.done))
    finally:
        progress.close()
        await core_log.close()
    if result.ok:
        print(f"ok: {result.count} events, hash chain intact; head seq {result.head.seq} hash {result.head.hash}")
        return EXIT_OK
    print(f"DAMAGED at seq {result.first_bad_seq}: {result.reason} ({result.count} events verified before it)")
    return EXIT_NO


async def cmd_authority(config: Config, args: argparse.Namespace) -> int:
    """The configuration's answer to "who can make a telescope move?" (an auditor's first question)."""
    print("Who may publish under which IVORNs ([authority]; refused packets are voevent.rejected, code authority):")
    rows = config.authority_policy().describe()
    width = max(len(prefix) for prefix, _ in rows)
    for prefix, who in rows:
        print(f"  {prefix:<{width}}  {who}")
    acl = Acl(config.acl)
    print("\nTelescopes (a trigger is sent only after an approved request; every step is a trigger.* event):")
    if not config.triggers.telescopes:
        print("  none configured ([[triggers.telescopes]])")
    for scope in config.triggers.telescopes:
        channels = [f"VTP subscribers filtering on {scope.stream(config.triggers.authority)}"]
        channels += [f"XMPP {jid}" for jid in scope.jids]
        channels += [f"NATS {scope.nats_subject}"] if scope.nats_subject else []
        print(f"  {scope.name}: {'; '.join(channels)}")
        print(f"    request: {', '.join(acl.requesters(scope.name)) or 'nobody'}")
        rule = " (two people: never the requester)" if scope.two_person else ""
        print(f"    approve: {', '.join(acl.approvers(scope.name)) or 'nobody'}{rule}")
        if scope.nats_subject:
            print(f"    outside burstbus: anyone allowed to publish on NATS subject {scope.nats_subject} (restrict it "
                  "to burstbus's NATS user in the server's permissions)")
        if scope.jids:
            print("    outside burstbus: the telescope must act only on VOEvents whose server-stamped sender is "
                  f"{config.xmpp.jid or 'the bot JID'}")
    return EXIT_OK


async def cmd_rebuild(config: Config, args: argparse.Namespace) -> int:
    with data_dir_lock(config.data_dir):
        core_log = await open_log(config)
        runner = await ProjectionRunner.open(config.projections_path, all_projections())
        try:
            chosen = runner.select(args.names)
        except KeyError as exc:
            print(f"burstbus rebuild: {exc.args[0]}", file=sys.stderr)
            await runner.close()
            await core_log.close()
            return EXIT_USAGE
        head = (await core_log.head()).seq
        progress = Progress("rebuilding", head)
        try:
            await runner.rebuild(core_log, [p.name for p in chosen], lambda seq: progress.advance(seq - progress.done))
        finally:
            progress.close()
            await runner.close()
            await core_log.close()
    print(f"rebuilt {', '.join(p.name for p in chosen)} from {head} events")
    return EXIT_OK


async def cmd_replay(config: Config, args: argparse.Namespace) -> int:
    try:
        until = normalise_time(args.until)
    except ValueError as exc:
        print(f"burstbus replay: bad --until time: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out: Path = args.out or config.data_dir / f"replay-{until.replace(':', '').replace('.', '_')}.sqlite"
    if out.exists():
        out.unlink()
    core_log = await open_log(config)
    runner = await ProjectionRunner.open(out, all_projections())
    try:
        stop = await core_log.seq_at(until)
        applied = await runner.catch_up(core_log, stop_at=stop) if stop else 0
        record = await core_log.get(stop) if stop else None
        summary = await _replay_summary(runner, args.bursts)
    finally:
        await runner.close()
        await core_log.close()
    print(f"state as of {until}: {applied} events (log seq 1..{stop})")
    if record is not None:
        print(f"  last event: seq {record.seq} {record.type} recorded {record.recorded_at} hash {record.hash}")
    print(summary)
    print(f"projections written to {out}")
    return EXIT_OK


async def _replay_summary(runner: ProjectionRunner, burst_limit: int) -> str:
    def summarise(conn: sqlite3.Connection) -> str:
        lines = []
        notices = conn.execute("SELECT COUNT(*) FROM voevent").fetchone()[0]
        roles = conn.execute("SELECT role, COUNT(*) FROM voevent GROUP BY role ORDER BY role").fetchall()
        lines.append(f"  notices: {notices}" + (" (" + ", ".join(f"{r}: {n}" for r, n in roles) + ")" if roles else ""))
        statuses = conn.execute("SELECT status, COUNT(*) FROM processes GROUP BY status ORDER BY status").fetchall()
        total = sum(n for _, n in statuses)
        lines.append(f"  processes: {total}" + (" (" + ", ".join(f"{s}: {n}" for s, n in statuses) + ")" if statuses else ""))
        count = conn.execute("SELECT COUNT(*) FROM bursts").fetchone()[0]
        lines.append(f"  bursts: {count}")
        rows = conn.execute(
            "SELECT burst_id, notice_count, instruments, ra, dec, err, last_notice_at, retracted FROM bursts "
            "ORDER BY last_notice_at DESC LIMIT ?",
            (burst_limit,),
        ).fetchall()
        for burst_id, n, instruments, ra, dec, err, last, retracted in rows:
            where = f"RA {ra:.4f} Dec {dec:+.4f}" + (f" ± {err:.4g}°" if err is not None else "") if ra is not None else "no position"
            flag = " RETRACTED" if retracted else ""
            lines.append(f"    {burst_id:<24} {n:>3} notices  {where:<40} last {last}  {', '.join(json.loads(instruments))}{flag}")
        return "\n".join(lines)

    return await run_on_connection(runner.db, summarise)


async def cmd_publish(config: Config, args: argparse.Namespace) -> int:
    from burstbus.broker.client import parse_address, publish

    try:
        host, port = parse_address(args.to, 8098) if args.to else (config.vtp.receive_host, config.vtp.receive_port)
    except ValueError:
        print(f"burstbus publish: bad --to {args.to!r} (want HOST:PORT)", file=sys.stderr)
        return EXIT_USAGE
    status = EXIT_OK
    for path in args.files:
        try:
            answer = await publish(host, port, path.read_bytes())
        except TimeoutError:
            print(f"FAILED {path}: no answer from {host}:{port}", file=sys.stderr)
            status = EXIT_NO
            continue
        except OSError as exc:
            print(f"FAILED {path}: {exc}", file=sys.stderr)
            status = EXIT_NO
            continue
        if answer.acknowledged:
            print(f"ACK  {path}")
        else:
            print(f"NAK  {path}: {answer.reason}")
            status = EXIT_NO
    return status


async def cmd_subscribe(config: Config, args: argparse.Namespace) -> int:
    from lxml import etree

    from burstbus.broker.client import event_filename, parse_address, subscribe

    try:
        host, port = parse_address(args.address, 8099)
    except ValueError:
        print(f"burstbus subscribe: bad address {args.address!r} (want HOST:PORT)", file=sys.stderr)
        return EXIT_USAGE
    for xpath in args.filters:
        try:
            etree.XPath(xpath)
        except etree.XPathSyntaxError as exc:
            print(f"burstbus subscribe: --filter {xpath!r} is not valid XPath: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    def on_event(ivorn: str, raw: bytes) -> None:
        if args.save:
            target = args.save / event_filename(ivorn)
            target.write_bytes(raw)
            print(f"{ivorn}  {len(raw)} bytes  -> {target}", flush=True)
        else:
            print(f"{ivorn}  {len(raw)} bytes", flush=True)

    await subscribe(host, port, local_ivo=args.local_ivo, filters=args.filters, on_event=on_event)
    return EXIT_OK




COMMANDS = {
    "run": cmd_run,
    "demo": cmd_demo,
    "import": cmd_import,
    "log": cmd_log,
    "verify": cmd_verify,
    "authority": cmd_authority,
    "rebuild": cmd_rebuild,
    "replay": cmd_replay,
    "publish": cmd_publish,
    "subscribe": cmd_subscribe,
}

if __name__ == "__main__":
    sys.exit(main())
