"""``burstbus``: the one command-line program (run, demo, import, log, verify, authority, rebuild, replay,
publish, subscribe, kafka check / backfill).

Exit codes: 0 success; 1 the command's own "no" (a damaged chain for ``verify``); 2 bad usage
or configuration (argparse's convention); 3 the data directory is held by a running service.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import logging
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, cast

from burstbus import __version__
from burstbus.acl import Acl
from burstbus.catalogue import EVENT_TYPES
from burstbus.component import StartupError
from burstbus.config import Config, ConfigError, DataSection, load_config, with_data_dir
from burstbus.events import RecordedEvent, normalise_time
from burstbus.handlers.orchestrator import provenance
from burstbus.ingest import Submission
from burstbus.maintenance import add_parsers as add_maintenance_parsers
from burstbus.maintenance import exports_among, import_exports
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
from burstbus.sources import count_packets, iter_packets
from burstbus.store.base import EventLog, LogError, ReadFilter
from burstbus.store.projections.registry import all_projections
from burstbus.store.projections.runner import ProjectionRunner
from burstbus.store.sqlite_thread import DatabaseUnusable, run_on_connection
from burstbus.users import add_parsers as add_user_parsers
from burstbus.witnessing import add_parsers as add_witness_parsers
from burstbus.witnessing import add_verify_arguments, verify_against_command

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

    p = commands.add_parser("import", help="ingest VOEvents from files, folders or tarballs; or write a log export back")
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

    p = commands.add_parser("provenance", help="what made a product or a notice, back to the alert packet (W3C PROV-JSON)")
    p.add_argument("id", metavar="ID", help="a data/product or run event id, or a notice's event id or IVORN")

    p = commands.add_parser("verify", help="walk the hash chain; exit 1 naming the first damaged seq")
    add_verify_arguments(p)
    commands.add_parser("authority", help="who may publish under which IVORNs, and who can make each telescope move")

    p = commands.add_parser("rebuild", help="drop projections and replay the log into them")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"projections (default all: {', '.join(x.name for x in all_projections())})")

    p = commands.add_parser("replay", help="build the projections as they stood at a time, into a separate database")
    p.add_argument("--until", required=True, help="ISO-8601 UTC time: what did the log know then?")
    p.add_argument("--out", type=Path, help="database to write (default: DATA_DIR/replay-<time>.sqlite)")
    p.add_argument("--bursts", type=int, default=20, help="how many bursts to list (default 20)")

    p = commands.add_parser("publish", help="send VOEvents to a VTP broker as an author; exit 1 on any NAK")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--to", metavar="HOST:PORT", help="the broker's author port (default: [vtp] receive_host:receive_port, "
                   "or receive_tls_port with --tls)")
    _add_tls_options(p)

    p = commands.add_parser("slack", help="Slack: check the token and each channel (read, and post a test message)")
    slack = p.add_subparsers(dest="slack_command", required=True, metavar="SLACK_COMMAND")
    k = slack.add_parser("check", help="token, channel access, a test message; exit 1 on any problem")
    k.add_argument("--no-post", action="store_true", help="do not post the test message")

    p = commands.add_parser("kafka", help="GCN Kafka: check the upstreams, or back-fill from them once")
    kafka = p.add_subparsers(dest="kafka_command", required=True, metavar="KAFKA_COMMAND")
    k = kafka.add_parser("check", help="credentials, topics reachable, stored positions and lag; exit 1 on any problem")
    k.add_argument("--upstream", metavar="NAME", help="only this [[kafka.upstreams]] entry")
    k.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="how long to wait for the broker (default 10)")
    k = kafka.add_parser("backfill", help="read what the cluster still holds since a time into the log (once)")
    k.add_argument("--since", required=True, help="ISO-8601 time to read from (GCN keeps a few days)")
    k.add_argument("--until", help="ISO-8601 time to stop at (default: the end when it starts)")
    k.add_argument("--upstream", metavar="NAME", help="the [[kafka.upstreams]] entry (default: the only one)")
    k.add_argument("--topic", action="append", dest="topics", default=[], metavar="TOPIC",
                   help="only this topic (repeatable; default: the upstream's topics)")

    p = commands.add_parser("subscribe", help="receive VOEvents from a VTP broker; print or save them (Ctrl-C stops)")
    p.add_argument("address", metavar="HOST:PORT", help="the broker's subscriber port (port 8099 if omitted)")
    p.add_argument("--filter", action="append", dest="filters", default=[], metavar="XPATH",
                   help="XPath filter sent to the broker (repeatable; any one selecting is enough)")
    p.add_argument("--save", type=Path, metavar="DIR", help="write each packet to DIR/<ivorn>.xml")
    p.add_argument("--local-ivo", default="ivo://burstbus.local/subscriber", help="our IVORN in the VTP handshake")
    _add_tls_options(p)
    COMMANDS.update(add_maintenance_parsers(commands))
    COMMANDS.update(add_witness_parsers(commands))
    COMMANDS.update(add_user_parsers(commands))
    _global_options_after_the_command(parser)
    return parser


def _add_tls_options(p: argparse.ArgumentParser) -> None:
    """VTP over TLS for ``publish`` and ``subscribe`` (any of these implies --tls)."""
    p.add_argument("--tls", action="store_true", help="connect over TLS (the broker's certificate and name are checked)")
    p.add_argument("--ca", type=Path, metavar="FILE", help="PEM CA file to check the broker's certificate with (default: the system's)")
    p.add_argument("--cert", type=Path, metavar="FILE", help="PEM client certificate to present (with --key)")
    p.add_argument("--key", type=Path, metavar="FILE", help="PEM private key of --cert")
    p.add_argument("--server-name", metavar="NAME", help="the name the broker's certificate must carry (default: the host)")


def _tls_context(args: argparse.Namespace, command: str) -> tuple[Any, bool]:
    """(client TLS context or None, ok); a usage problem is printed."""
    if not (args.tls or args.ca or args.cert or args.key or args.server_name):
        return None, True
    if (args.cert is None) != (args.key is None):
        print(f"burstbus {command}: --cert and --key go together", file=sys.stderr)
        return None, False
    from burstbus.broker.tls import stdlib_client_context

    try:
        return stdlib_client_context(args.ca, args.cert, args.key), True
    except (OSError, ValueError) as exc:
        print(f"burstbus {command}: cannot use the TLS files: {exc}", file=sys.stderr)
        return None, False


def _global_options_after_the_command(parser: argparse.ArgumentParser) -> None:
    """``burstbus log --data-dir D`` as well as ``burstbus --data-dir D log``: every command
    (and sub-command) takes the global options too, and they win when given there."""
    actions = [a for a in parser._actions if a.dest in ("config", "data_dir", "verbose")]  # noqa: SLF001
    for group in parser._subparsers._group_actions if parser._subparsers else ():  # noqa: SLF001
        choices = cast(dict[str, argparse.ArgumentParser], group.choices)
        for sub in set(choices.values()):
            own = {a.dest for a in sub._actions}  # noqa: SLF001
            for action in actions:
                if action.dest not in own:
                    kwargs: dict[str, object] = {"dest": action.dest, "help": argparse.SUPPRESS, "default": argparse.SUPPRESS}
                    if action.dest == "verbose":
                        kwargs["action"] = "count"
                    else:
                        kwargs["type"] = Path
                    sub.add_argument(*action.option_strings, **kwargs)  # type: ignore[arg-type]
            _global_options_after_the_command(sub)


#: Commands that read an existing log: in a directory without one they say so, and create nothing.
READS_A_LOG = ("log", "verify", "replay", "rebuild", "export", "checkpoint", "evidence")


def data_dir_problem(data_dir: Path) -> str | None:
    """Why ``data_dir`` cannot be the data folder (it, or a folder above it, is a file), else None.

    Checked before any command so a mistyped ``--data-dir`` pointing at a file (a log file, a
    config) is one sentence, not a traceback from the first ``mkdir``."""
    for place in (data_dir, *data_dir.parents):
        if place.exists():
            if place.is_dir():
                return None
            return "is a file, not a folder" if place == data_dir else f"cannot be made: {place} is a file"
    return None


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
    if args.command == "demo" and args.data_dir is None and config.data_dir == DataSection().dir:
        config = with_data_dir(config, DEMO_DATA_DIR)  # the demo's night never mixes with a real log
    problem = data_dir_problem(config.data_dir)
    if problem:
        print(f"burstbus: the data folder {config.data_dir} {problem} (--data-dir DIR, BURSTBUS_DATA_DIR or [data] dir picks another)",
              file=sys.stderr)
        return EXIT_USAGE
    if args.command in READS_A_LOG and config.log.backend == "sqlite" and not config.log_path.is_file():
        print(f"burstbus: no log in {config.data_dir} (nothing was imported or run there; --data-dir DIR picks another)",
              file=sys.stderr)
        return EXIT_NO
    handler = COMMANDS[args.command]
    try:
        return asyncio.run(handler(config, args))
    except ServiceRunning as exc:
        print(f"burstbus: {exc}; stop it first", file=sys.stderr)
        return EXIT_BUSY
    except (LogError, DatabaseUnusable) as exc:  # a log or database that cannot be opened or read (a broken file, a server down)
        print(f"burstbus: {exc}", file=sys.stderr)
        return EXIT_NO
    except StartupError as exc:  # a port in use, an address not ours: the setting to change
        print(f"burstbus: cannot start: [{exc.setting.partition('.')[0]}] {exc.setting.partition('.')[2]}: {exc.problem}",
              file=sys.stderr)
        return EXIT_NO
    except KeyboardInterrupt:
        return 130


async def cmd_run(config: Config, args: argparse.Namespace) -> int:
    await run_service(config)
    return EXIT_OK


def _demo_pipelines(config: Config) -> tuple[Config, bool]:
    """The demo's pipelines and their worker, unless the configuration has pipelines of its own
    (or NATS, which the worker answers on, is off): (config, whether the demo worker runs)."""
    from dataclasses import replace

    from burstbus.bridges.nats.config import NatsSection
    from burstbus.demo_worker import DATA_KINDS, pipelines
    from burstbus.handlers.orchestrator.config import (
        OrchestratorSection,
        Pipeline,
        PipelinesSection,
    )

    if config.section(PipelinesSection).pipelines or not config.section(NatsSection).enabled:
        return config, False
    orchestrator = config.section(OrchestratorSection)
    config = config.with_section("orchestrator", replace(orchestrator, data_kinds=(*orchestrator.data_kinds, *DATA_KINDS)))
    config = config.with_section("pipelines", PipelinesSection(tuple(Pipeline(**p) for p in pipelines())))
    return config, True


async def _demo_worker(service: Service) -> None:
    """The demo worker on the running NATS bridge's server (burstbus/demo_worker.py)."""
    from burstbus.bridges.nats.config import connect_options
    from burstbus.bridges.nats.node import NatsNode
    from burstbus.demo_worker import DemoWorker

    node = service.part(NatsNode)
    if node is None:
        await asyncio.Event().wait()
        return
    await node.connected.wait()
    servers = [node.server.url] if node.server is not None else node.config.servers()
    options = {k: v for k, v in connect_options(node.config, servers=servers, name="burstbus demo worker").items()
               if k not in ("servers", "max_reconnect_attempts")}
    await DemoWorker(servers, prefix=node.config.prefix, options=options).run()


async def cmd_demo(config: Config, args: argparse.Namespace) -> int:
    from burstbus.demo import feed

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

    config, demo_pipelines = _demo_pipelines(config)

    def setup(service: Service) -> None:
        core = service.core

        async def feeder() -> None:
            await feed(core.ingest, core.log, interval=args.interval, rounds_=args.rounds, seed=args.seed,
                       say=lambda line: logging.getLogger("burstbus.demo").info("%s", line))
            await asyncio.Event().wait()  # done feeding; keep serving until stopped

        service.add("demo", feeder)
        if demo_pipelines:
            service.add("demo-worker", lambda: _demo_worker(service))

    await run_service(config, setup=setup)
    return EXIT_OK


async def cmd_import(config: Config, args: argparse.Namespace) -> int:
    paths: list[Path] = args.paths
    exports = exports_among(paths)
    if exports is not None:  # log exports: the records themselves, hashes and all
        return await import_exports(config, exports)
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

        problems: list[str] = []
        for packet in iter_packets(paths, config.ingest.max_bytes, problems):
            batch.append(Submission(packet.raw, "import", packet.label))
            if len(batch) >= IMPORT_BATCH:
                await flush()
        for problem in problems:  # the rest was imported; these could not be read at all
            print(f"burstbus import: {problem}", file=sys.stderr)
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
    if total and outcomes["rejected"] == total:
        print("burstbus import: every packet was refused (see the reasons above)", file=sys.stderr)
        status = EXIT_NO
    elif not total and status == EXIT_OK:
        print("burstbus import: no packets found (folders contribute *.xml files and tarballs)", file=sys.stderr)
        status = EXIT_NO
    return status


async def cmd_log(config: Config, args: argparse.Namespace) -> int:
    try:
        since = normalise_time(args.since) if args.since else None
        until = normalise_time(args.until) if args.until else None
    except ValueError as exc:
        print(f"burstbus log: bad time ({exc}); give an ISO 8601 time like 2026-11-30T00:00:00Z", file=sys.stderr)
        return EXIT_USAGE
    core_log = await open_log(config)
    unknown = [t for t in args.types or () if t not in EVENT_TYPES and not await core_log.read(0, ReadFilter.of(types=[t]), 1)]
    if unknown:  # a typo would print nothing, as if nothing had happened
        await core_log.close()
        for name in unknown:
            near = difflib.get_close_matches(name, sorted(EVENT_TYPES), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else " (see docs/events.md)"
            print(f"burstbus log: no event type {name!r} in the catalogue or in this log{hint}", file=sys.stderr)
        return EXIT_USAGE
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


async def cmd_provenance(config: Config, args: argparse.Namespace) -> int:
    """The chain of events that made ``ID`` (handlers/orchestrator/provenance.py), as PROV-JSON."""
    core_log = await open_log(config)
    try:
        document = await provenance.load(core_log, args.id)
    except provenance.NotFound as exc:
        print(f"burstbus provenance: {exc}", file=sys.stderr)
        return EXIT_NO
    finally:
        await core_log.close()
    print(json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True))
    return EXIT_OK


async def cmd_verify(config: Config, args: argparse.Namespace) -> int:
    if args.against is not None:  # against signed checkpoints (burstbus/witnessing.py)
        return await verify_against_command(config, args)
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

    context, ok = _tls_context(args, "publish")
    if not ok:
        return EXIT_USAGE
    vtp = config.vtp
    default_port = vtp.receive_tls_port if context is not None and vtp.receive_tls_port else vtp.receive_port
    try:
        host, port = parse_address(args.to, 8098) if args.to else (vtp.receive_host, default_port)
    except ValueError:
        print(f"burstbus publish: bad --to {args.to!r} (want HOST:PORT)", file=sys.stderr)
        return EXIT_USAGE
    status = EXIT_OK
    for path in args.files:
        try:
            answer = await publish(host, port, path.read_bytes(), tls=context, server_name=args.server_name)
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

    context, ok = _tls_context(args, "subscribe")
    if not ok:
        return EXIT_USAGE
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

    await subscribe(host, port, local_ivo=args.local_ivo, filters=args.filters, on_event=on_event, tls=context,
                    server_name=args.server_name)
    return EXIT_OK




async def cmd_slack(config: Config, args: argparse.Namespace) -> int:
    from burstbus.bridges.slack.check import check
    from burstbus.bridges.slack.config import SlackSection

    report = await check(config.section(SlackSection), post=not args.no_post)
    for line in report.lines:
        print(line)
    if report.status:
        print("burstbus slack check: problems found (see above)", file=sys.stderr)
    return EXIT_NO if report.status else EXIT_OK


async def cmd_kafka(config: Config, args: argparse.Namespace) -> int:
    from burstbus.bridges.kafka.config import KafkaSection

    section = config.section(KafkaSection)
    if args.kafka_command == "check":
        from burstbus.bridges.kafka.check import check

        report = await asyncio.get_running_loop().run_in_executor(
            None, lambda: check(section, config.state_path, only=args.upstream, timeout=args.timeout, log_path=config.log_path))
        for line in report.lines:
            print(line)
        if report.status == EXIT_NO:
            print("burstbus kafka check: problems found (see above)", file=sys.stderr)
        return report.status
    return await _kafka_backfill(config, section, args)


async def _kafka_backfill(config: Config, section: object, args: argparse.Namespace) -> int:
    from burstbus.bridges.kafka.backfill import backfill
    from burstbus.bridges.kafka.client import KafkaUnavailable
    from burstbus.bridges.kafka.config import KafkaSection
    from burstbus.events import parse_time

    assert isinstance(section, KafkaSection)
    try:
        since = parse_time(args.since)
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        print(f"burstbus kafka backfill: bad time ({exc}); give an ISO 8601 time like 2026-11-30T00:00:00Z", file=sys.stderr)
        return EXIT_USAGE
    names = [u.name for u in section.upstreams]
    if not names:
        print("burstbus kafka backfill: no [[kafka.upstreams]] configured", file=sys.stderr)
        return EXIT_USAGE
    if args.upstream is None and len(names) > 1:
        print(f"burstbus kafka backfill: say which upstream (--upstream: {', '.join(names)})", file=sys.stderr)
        return EXIT_USAGE
    name = args.upstream or names[0]
    if name not in names:
        print(f"burstbus kafka backfill: no upstream is named {name!r} (configured: {', '.join(names)})", file=sys.stderr)
        return EXIT_USAGE
    core = await Core.open(config)
    try:
        try:
            result = await backfill(section, section.upstream(name), core.log, core.ingest, since=since, until=until,
                                    topics=args.topics)
        except KafkaUnavailable as exc:
            print(f"burstbus kafka backfill: the broker of {section.upstream(name).where()} did not answer: {exc}", file=sys.stderr)
            return EXIT_NO
        except ConfigError as exc:
            print(f"burstbus kafka backfill: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if not service_running(config.data_dir):
            await core.catch_up()
    finally:
        await core.close()
    not_read = result.not_read()
    for topic, reason in sorted(result.missing.items()):
        print(f"{topic}: not read ({reason}{'' if topic in not_read else '; a preset topic, not published yet'})")
    for (topic, partition), (first, after) in sorted(result.read.items()):
        outcomes = ", ".join(f"{n} {o}" for (t, o), n in sorted(result.counts.items()) if t == topic) or "nothing new"
        span = f"offsets {first}..{after - 1}" if after > first else f"nothing since the time (next offset {first})"
        print(f"{topic}[{partition}]: {span}: {outcomes}")
    if result.timed_out:
        print("burstbus kafka backfill: the broker stopped answering before the end; run it again", file=sys.stderr)
        return EXIT_NO
    if not_read:
        print(f"burstbus kafka backfill: {', '.join(sorted(not_read))} not read: check the name, or the credentials' access",
              file=sys.stderr)
        return EXIT_NO
    return EXIT_OK


COMMANDS: dict[str, Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "kafka": cmd_kafka,
    "slack": cmd_slack,
    "run": cmd_run,
    "demo": cmd_demo,
    "import": cmd_import,
    "log": cmd_log,
    "verify": cmd_verify,
    "provenance": cmd_provenance,
    "authority": cmd_authority,
    "rebuild": cmd_rebuild,
    "replay": cmd_replay,
    "publish": cmd_publish,
    "subscribe": cmd_subscribe,
}

if __name__ == "__main__":
    sys.exit(main())
