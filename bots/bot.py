"""The Burst Advocate bot: commands in, answers out, every command an event in the log.

:class:`BurstBot` implements :class:`~burstbus.bots.chat.ChatBot`. A transport (XMPP today)
establishes who asked (:class:`~burstbus.bots.chat.Asker`), calls :meth:`BurstBot.handle`, and
sends the :class:`~burstbus.bots.chat.Reply` back and its pages to their addressees. The bot
never sees stanzas: identity is ``Asker.jid`` only, never a nickname or anything typed.

For each command, in order: normalise the phone's text, find the command (or suggest one),
check the asker's rights (``[acl]``; read-only commands only when a room hides the real JID),
run it, record ``ba.command`` with the outcome (the text redacted of approval codes), then
run what must follow the record (delivery of an approved trigger), and answer. Refusals say
why, politely. Reads go to the projections off the loop; writes go to the log.

Wiring (the service does this; :func:`add_bot` is the short form)::

    bot = BurstBot.from_core(core, publish=nats_node.publish if nats_node else None,
                             health=lambda: {c.name: c.health() for c in service.components})
    bot.messenger = xmpp_messenger          # when the XMPP bridge exists (or pass messenger=)
    service.add("bot-expiry", bot.run_expiry)
    ... await bot.close() at shutdown
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from burstbus.bots import queries, render
from burstbus.bots.acl import Acl, Grant
from burstbus.bots.chat import Command, Messenger, Reply
from burstbus.bots.commands import CommandSpec, Registry
from burstbus.bots.config import Role
from burstbus.bots.parse import (
    AngleError,
    Parsed,
    normalise_code,
    parse_command,
    parse_dec,
    parse_ra,
    parse_radius,
    suggest,
)
from burstbus.bots.triggers import Outcome, Publish, TriggerWorkflow, load_code_key
from burstbus.bridges.http.errors import ApiError
from burstbus.bridges.http.reader import ProjectionReader
from burstbus.config import Config
from burstbus.events import Event
from burstbus.ingest import Ingest
from burstbus.state import StateStore
from burstbus.store.base import EventLog

if TYPE_CHECKING:
    from burstbus.service import Core, Service

log = logging.getLogger(__name__)

COMMAND_EVENT = "ba.command"
#: ``ba.command`` events share this stream (``burstbus log --stream ba``).
COMMAND_STREAM = "ba"
#: A component-health source for ``status``: ``{name: {"up": bool, "failure": …}}``, sync or async.
HealthSource = Callable[[], Mapping[str, Mapping[str, Any]] | Awaitable[Mapping[str, Mapping[str, Any]]]]

DEFAULT_BURSTS = 5
MAX_BURSTS = 25
NEAR_RADIUS = 1.0
NEAR_MAX_RADIUS = 30.0
NEAR_LINES = 10
CODE_MARK = "[code]"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BurstBot:
    """The Burst Advocate bot (a :class:`~burstbus.bots.chat.ChatBot`).

    ``messenger`` may be given later (``bot.messenger = …``) since the transport that
    implements it usually needs the bot first. ``publish`` is ``NatsNode.publish`` or None
    when NATS is off. ``health`` feeds ``status``. ``clock`` is for tests (expiry).
    """

    def __init__(
        self,
        config: Config,
        log: EventLog,
        ingest: Ingest,
        state: StateStore,
        *,
        messenger: Messenger | None = None,
        publish: Publish | None = None,
        health: HealthSource | None = None,
        clock: Callable[[], datetime] = _utc_now,
        reader: ProjectionReader | None = None,
    ):
        self.config = config
        self.log = log
        self.ingest = ingest
        self.state = state
        self.publish = publish
        self.health = health
        self.clock = clock
        self.acl = Acl(config.acl, config.triggers)
        self.registry = Registry()
        self.link_base = config.http.link_base()
        self._own_reader = reader is None
        self.reader = reader or ProjectionReader(config.projections_path, threads=2, timeout=10.0)
        self._messenger = messenger
        self._workflow: TriggerWorkflow | None = None
        self._starting = asyncio.Lock()

    @classmethod
    def from_core(cls, core: Core, **options: Any) -> BurstBot:
        return cls(core.config, core.log, core.ingest, core.state, **options)

    @property
    def messenger(self) -> Messenger | None:
        return self._messenger

    @messenger.setter
    def messenger(self, value: Messenger | None) -> None:
        self._messenger = value
        if self._workflow is not None:
            self._workflow.messenger = value

    async def start(self) -> TriggerWorkflow:
        """Load the code key (creating it once) and build the workflow; idempotent."""
        async with self._starting:
            if self._workflow is None:
                key = await load_code_key(self.state, self.config.triggers.code_secret)
                workflow = TriggerWorkflow(
                    self.log, self.ingest, self.reader.run, self.acl, self.config.triggers, key,
                    link_base=self.link_base, publish=self.publish, clock=self.clock,
                )
                workflow.messenger = self._messenger
                self._workflow = workflow
            return self._workflow

    async def run_expiry(self, interval: float | None = None) -> None:
        """The supervised component: finish interrupted deliveries, then expire due codes forever."""
        workflow = await self.start()
        await workflow.run_expiry(interval)

    async def close(self) -> None:
        if self._own_reader:
            await asyncio.get_running_loop().run_in_executor(None, self.reader.close)

    # -- the ChatBot entry point -------------------------------------------------------------

    async def handle(self, command: Command) -> Reply:
        """Answer one command; never raises (an internal failure is an answer and an event)."""
        try:
            return await self._handle(command)
        except Exception as exc:
            log.exception("bot command failed: %r", _redact_all(command.text))
            return Reply(f"Sorry, something went wrong on my side ({type(exc).__name__}); it has been logged.")

    async def _handle(self, command: Command) -> Reply:
        workflow = await self.start()
        asker = command.asker
        grant = self.acl.grant(asker)
        parsed = parse_command(command.text)
        if parsed is None:
            return await self._finish(command, None, "", Outcome(False, "Say 'help' to see what you can ask me.", "empty"), "unknown")
        spec = self.registry.lookup(parsed.name)
        if spec is None:
            return await self._unknown(command, grant, parsed)
        parsed = _merge_split_code(spec, parsed)
        logged = _logged_text(spec, parsed)
        refusal = self.registry.refusal(spec, grant)
        if refusal is not None:
            return await self._finish(command, spec, logged, self._refusal(spec, grant, refusal), "refused")
        if len(parsed.args) < spec.min_args or (spec.max_args is not None and len(parsed.args) > spec.max_args):
            text = f"Usage: {spec.usage} — {spec.summary}." + (f" {spec.details}" if spec.details else "")
            return await self._finish(command, spec, logged, Outcome.refused(text, "usage"), "refused")
        try:
            outcome = await self._run(spec, grant, parsed, workflow)
        except ApiError as exc:
            outcome = Outcome(False, f"Sorry, I cannot read the archive right now ({exc.message}). Try again in a moment.",
                              f"read model unavailable: {exc.message}")
            return await self._finish(command, spec, logged, outcome, "error")
        return await self._finish(command, spec, logged, outcome, "ok" if outcome.ok else "refused")

    async def _run(self, spec: CommandSpec, grant: Grant, parsed: Parsed, workflow: TriggerWorkflow) -> Outcome:
        args = parsed.args
        if spec.name == "help":
            return self._help(grant, args[0] if args else None)
        if spec.name == "whoami":
            return self._whoami(grant)
        if spec.name == "bursts":
            return await self._bursts(args)
        if spec.name in ("burst", "notices", "processes"):
            return await self._burst(spec.name, args[0])
        if spec.name == "near":
            return await self._near(args)
        if spec.name == "status":
            return await self._status()
        if spec.name == "triggers":
            rows = await self.reader.run(queries.recent_triggers, 10)
            return Outcome(True, render.triggers_list(rows, self.link_base))
        if spec.name == "trigger":
            note = " ".join(args[2:])[:500]
            return await workflow.request(grant, args[0], args[1], note)
        if spec.name == "approve":
            return await workflow.approve(grant, args[0], args[1] if len(args) > 1 else None)
        if spec.name == "deny":
            return await workflow.deny(grant, args[0], " ".join(args[1:])[:500])
        raise AssertionError(f"command {spec.name} has no handler")

    async def _finish(self, command: Command, spec: CommandSpec | None, logged: str, outcome: Outcome, result: str) -> Reply:
        """Record ``ba.command``, then run what follows the record, then build the answer."""
        asker = command.asker
        data: dict[str, Any] = {
            "jid": asker.jid, "via": asker.via, "room": asker.room, "nick": asker.nick,
            "command": spec.name if spec else None, "text": logged, "outcome": result,
            "reason": None if result == "ok" else outcome.reason,
        }
        if outcome.request_id:
            data["request_id"] = outcome.request_id
        await self.log.append([Event(type=COMMAND_EVENT, data=data, stream=COMMAND_STREAM, actor=asker.actor)])
        text, pages = outcome.text, list(outcome.pages)
        if outcome.followup is not None:
            try:
                more = await outcome.followup()
                text, pages = f"{text}\n{more.text}", pages + more.pages
            except Exception as exc:
                log.exception("follow-up of %s failed", spec.name if spec else "?")
                text += f"\nSorry, what follows failed on my side ({type(exc).__name__}); it has been logged."
        return Reply(text, pages)

    # -- refusals ---------------------------------------------------------------------------

    async def _unknown(self, command: Command, grant: Grant, parsed: Parsed) -> Reply:
        guess = suggest(parsed.name, self.registry.names(grant))
        spec = self.registry.lookup(guess) if guess else None
        shown = parsed.name[:40]
        text = f"Sorry, I don't know '{shown}'."
        if spec is not None:
            text += f" Did you mean '{spec.usage}'?"
        text += " Say 'help' for what you can ask."
        logged = _redact_all(" ".join([parsed.name, *parsed.args]), strict=True, everything=spec is not None and bool(spec.redact))
        return await self._finish(command, None, logged, Outcome.refused(text, f"unknown command {shown!r}"), "unknown")

    def _refusal(self, spec: CommandSpec, grant: Grant, why: str) -> Outcome:
        if why == "hidden-jid":
            return Outcome.refused(
                f"Sorry, this room hides your real address, so I cannot tell who you are and '{spec.name}' is not "
                "possible here (read-only commands only). Send me a direct message instead.",
                "real JID hidden by the room",
            )
        if grant.role == Role.NONE and grant.jid is not None and not grant.listed:
            return Outcome.refused(
                f"Sorry, {grant.jid} is not in my access list, so I can only answer 'help' and 'whoami'. "
                "An admin can add you to [acl].",
                "not listed in [acl]",
            )
        if grant.role == Role.NONE:
            return Outcome.refused("Sorry, I can only answer 'help' and 'whoami' here.", "no role")
        return Outcome.refused(
            f"Sorry, '{spec.name}' needs the {spec.role.label} role; you are {grant.role.label}.",
            f"needs role {spec.role.label}",
        )

    # -- read-only commands -----------------------------------------------------------------

    def _help(self, grant: Grant, topic: str | None) -> Outcome:
        allowed = self.registry.allowed(grant)
        if topic is None:
            lines = ["What you can ask me (say 'help COMMAND' for more):"]
            lines += [f"{s.usage} — {s.summary}" for s in allowed]
            if not grant.identified:
                lines.append("This room hides your address: send me a direct message for more.")
            return Outcome(True, "\n".join(lines))
        spec = self.registry.lookup(topic.lstrip("/!"))
        if spec is None:
            guess = suggest(topic, self.registry.names(grant))
            hint = f" Did you mean '{guess}'?" if guess else ""
            return Outcome.refused(f"Sorry, there is no command '{topic[:40]}'.{hint}", "help on unknown command")
        if spec not in allowed:
            return Outcome.refused(f"Sorry, '{spec.name}' is not available to you.", f"help on {spec.name}: not allowed")
        text = f"{spec.usage} — {spec.summary}." + (f"\n{spec.details}" if spec.details else "")
        if spec.aliases:
            text += f"\nAlso: {', '.join(spec.aliases)}"
        return Outcome(True, text)

    def _whoami(self, grant: Grant) -> Outcome:
        if grant.jid is None:
            return Outcome(True, "This room hides your real address, so I cannot tell who you are: read-only commands "
                                 "only here. Send me a direct message to do more.")
        if not grant.listed:
            rights = "help and whoami only" if grant.role == Role.NONE else f"the default role {grant.role.label}"
            return Outcome(True, f"You are {grant.jid}. You are not in my access list, so you have {rights}.")
        implied = [r.label for r in Role if Role.NONE < r < grant.role]
        role = grant.role.label + (f" (includes {', '.join(reversed(implied))})" if implied else "")
        if grant.role >= Role.BA:
            scopes = "every telescope" if grant.telescopes is None else (", ".join(grant.telescope_names(self.config.triggers)) or "none")
            return Outcome(True, f"You are {grant.jid}: {role}; telescopes: {scopes}.")
        return Outcome(True, f"You are {grant.jid}: {role}.")

    async def _bursts(self, args: list[str]) -> Outcome:
        count = DEFAULT_BURSTS
        if args:
            try:
                count = int(args[0])
            except ValueError:
                return Outcome.refused(f"Sorry, '{args[0][:20]}' is not a number. Usage: bursts [N]", "usage")
            if not 1 <= count <= MAX_BURSTS:
                return Outcome.refused(f"Sorry, N must be between 1 and {MAX_BURSTS}.", "usage")
        rows = await self.reader.run(queries.recent_bursts, count)
        return Outcome(True, render.bursts_list(rows, self.link_base))

    async def _burst(self, what: str, typed: str) -> Outcome:
        def read(conn: Any) -> tuple[str | None, Any]:
            burst_id = queries.resolve_burst_id(conn, typed)
            if burst_id is None:
                return None, None
            if what == "notices":
                return burst_id, queries.notices(conn, burst_id)
            if what == "processes":
                return burst_id, queries.processes(conn, burst_id)
            return burst_id, queries.burst_view(conn, burst_id)

        burst_id, found = await self.reader.run(read)
        if burst_id is None:
            if what == "processes":  # processes may name a burst no notice has opened yet
                rows = await self.reader.run(queries.processes, typed)
                if rows:
                    return Outcome(True, render.processes_list(typed, rows, f"{self.link_base}/processes"))
            return Outcome.refused(f"Sorry, I know no burst called '{typed[:64]}'. 'bursts' lists the recent ones.", "unknown burst")
        link = f"{self.link_base}/bursts/{burst_id}"
        if what == "notices":
            return Outcome(True, render.notices_list(burst_id, found, link))
        if what == "processes":
            return Outcome(True, render.processes_list(burst_id, found, link))
        return Outcome(True, render.burst_summary(found, link))

    async def _near(self, args: list[str]) -> Outcome:
        words = _position_words(args)
        if words is None:
            return Outcome.refused("Usage: near RA DEC [RADIUS] — e.g. near 188.73 -12.5 2, or near 12:34:56 -12:30:00 30'", "usage")
        try:
            ra, dec = parse_ra(words[0]), parse_dec(words[1])
            radius = parse_radius(words[2], maximum=NEAR_MAX_RADIUS) if len(words) > 2 else NEAR_RADIUS
        except AngleError as exc:
            return Outcome.refused(f"Sorry, {exc}.", f"bad position: {exc}")
        hits, total = await self.reader.run(queries.near, ra, dec, radius, NEAR_LINES)
        return Outcome(True, render.near_list(hits, total, ra, dec, radius))

    async def _status(self) -> Outcome:
        head = await self.log.head()
        components: Mapping[str, Mapping[str, Any]] = {}
        if self.health is not None:
            found = self.health()
            components = await found if inspect.isawaitable(found) else found
        chat = dict(self._messenger.health()) if self._messenger is not None else None
        try:
            checkpoints = await self.reader.run(queries.projection_positions)
            pending: int | None = await self.reader.run(queries.pending_count)
        except ApiError:
            checkpoints, pending = {}, None
        return Outcome(True, render.status_text(head.seq, checkpoints, components, chat, pending))


def add_bot(service: Service, core: Core, messenger: Messenger | None = None) -> BurstBot:
    """Build the bot for a service and supervise its expiry task (``bot-expiry``).

    Call after NATS is wired (``service.nats``), so approved triggers can be published;
    ``status`` reports every supervised component. The XMPP bridge sets ``bot.messenger``.
    """
    nats = getattr(service, "nats", None)
    bot = BurstBot.from_core(
        core,
        messenger=messenger,
        publish=nats.publish if nats is not None else None,
        health=lambda: {c.name: c.health() for c in service.components},
    )
    service.add("bot-expiry", bot.run_expiry)
    return bot


# -- text helpers --------------------------------------------------------------------------


def _merge_split_code(spec: CommandSpec, parsed: Parsed) -> Parsed:
    """``approve k7qx m2pd`` (a phone keyboard's space) → one code argument."""
    args = parsed.args
    if spec.redact and len(args) >= 2 and normalise_code(args[0]) is None and normalise_code(args[0] + args[1]):
        return Parsed(parsed.name, [args[0] + args[1], *args[2:]], parsed.rest)
    return parsed


def _quote(word: str) -> str:
    return f'"{word}"' if (" " in word or not word) else word


def _logged_text(spec: CommandSpec, parsed: Parsed) -> str:
    """The command as the log keeps it: normalised, approval codes replaced by ``[code]``."""
    words = [CODE_MARK if i in spec.redact else _quote(a) for i, a in enumerate(parsed.args)]
    return _redact_all(" ".join([parsed.name, *words]))


_CODE_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z2-9]{4}-?[A-Za-z2-9]{4}(?![A-Za-z0-9])")


def _redact_all(text: str, *, strict: bool = False, everything: bool = False) -> str:
    """Replace what could be an approval code before the text reaches the log.

    Always ``XXXX-XXXX`` words; with ``strict`` (unknown commands) also bare 8-symbol words;
    with ``everything`` (a mistyped ``aprove CODE``) all the arguments. Notes and reasons of
    known commands are only checked for the dashed form, so ordinary words stay readable."""
    if everything:
        head, _, _ = text.partition(" ")
        return f"{head} {CODE_MARK}…" if " " in text else text

    def hide(match: re.Match[str]) -> str:
        word = match.group(0)
        return CODE_MARK if normalise_code(word) and (strict or "-" in word) else word

    return _CODE_WORD.sub(hide, text)


def _position_words(args: list[str]) -> list[str] | None:
    """RA, DEC and optional RADIUS from what was typed: ``1 2 3``, ``1, 2, 3``, ``1,2,3``, or
    sexagesimal with spaces (``12 34 56 -12 30 00 [R]``)."""
    text = re.sub(r",\s+", " ", " ".join(args)).strip()
    words = text.split(" ")
    if len(words) == 1 and text.count(",") >= 1:
        words = text.split(",")
    if len(words) in (6, 7):
        words = [":".join(words[0:3]), ":".join(words[3:6]), *words[6:]]
    words = [w.rstrip(",;") for w in words if w.strip(",;")]
    return words if len(words) in (2, 3) else None
