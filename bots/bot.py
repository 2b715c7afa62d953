"""The Burst Advocate bot: commands in, answers out, every command an event in the log.

:class:`BurstBot` implements :class:`~burstbus.chat.ChatBot`. A transport (XMPP today)
establishes who asked (:class:`~burstbus.chat.Asker`), calls :meth:`BurstBot.handle`, and
sends the :class:`~burstbus.chat.Reply` back and its pages to their addressees. The bot
never sees stanzas: identity is ``Asker.jid`` only, never a nickname or anything typed.

For each command, in order: check the sender's pace (:mod:`~burstbus.ratelimit`: a
flood is answered once and then dropped before anything becomes an event), normalise the
phone's text, find the command (or suggest one), check the asker's rights (``[acl]``;
read-only commands only when a room hides the real JID), run it, record ``ba.command`` with
the outcome (text, reason and nickname redacted of approval codes by
:mod:`~burstbus.bots.redact`, the text capped), then run what must follow the record
(delivery of an approved trigger), and answer. Refusals say why, politely. Reads go to the
projections off the loop; writes go to the log.

Wiring: ``burstbus.bots.component`` builds it from the component host where a chat transport
offers the ``chat.messenger`` port, offers it as ``chat.bot``, and supervises its expiry task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from burstbus.acl import Acl, AclSection, Grant, Role
from burstbus.angles import position_words
from burstbus.bots import render
from burstbus.bots.commands import CommandSpec, Registry
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
from burstbus.bots.redact import (
    CODE_MARK,
    KnownCodes,
    is_keyword,
    is_request_id,
    never,
    read_code_args,
    redact_text,
)
from burstbus.chat import Command, Messenger, Page, Reply
from burstbus.config import Config
from burstbus.events import Event
from burstbus.handlers.notices.drafts import NoticeDrafts
from burstbus.handlers.orchestrator import asking
from burstbus.handlers.orchestrator.config import PipelinesSection
from burstbus.handlers.triggers import Outcome, TriggerWorkflow
from burstbus.handlers.triggers.codes import load_code_key
from burstbus.handlers.triggers.config import TriggersSection
from burstbus.handlers.triggers.delivery import Publish
from burstbus.handlers.witness.witness import NothingToSign
from burstbus.ingest import Ingest
from burstbus.ratelimit import RateLimiter
from burstbus.state import StateStore
from burstbus.store.base import EventLog
from burstbus.store.read import bursts as read_burst
from burstbus.store.read import lists as read_lists
from burstbus.store.reader import ProjectionReader, ReadModelError


class _Core(Protocol):
    """What :meth:`BurstBot.from_core` needs (``burstbus.service.Core`` or a component host)."""

    config: Config
    log: EventLog
    ingest: Ingest
    state: StateStore

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
#: Characters of a command's text kept in ``ba.command`` (longer: ``text_length`` and
#: ``text_sha256`` say what the rest was).
MAX_RECORDED = 500
#: Longer messages are not commands (the longest, a note or a reason, is cut at 500).
MAX_COMMAND_CHARS = 2000


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BurstBot:
    """The Burst Advocate bot (a :class:`~burstbus.chat.ChatBot`).

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
        limiter: RateLimiter | None = None,
        link_base: str = "",
        witness: Callable[[], Any] | None = None,
        orchestrator: Callable[[], Any] | None = None,
        drafts: Callable[[], NoticeDrafts | None] | None = None,
    ):
        self.config = config
        #: The Notice Creator (port ``notices.drafts``), looked up when ``retract``/``publish`` run.
        self.drafts = drafts
        #: The orchestrator (port ``orchestrator``), looked up when ``process`` runs.
        self.orchestrator = orchestrator
        self.pipelines = config.section(PipelinesSection)
        #: The witness (``handlers/witness``, port ``witness``), looked up when ``checkpoint`` runs.
        self.witness = witness
        self.log = log
        self.ingest = ingest
        self.state = state
        self.publish = publish
        self.health = health
        self.clock = clock
        self.acl_section = config.section(AclSection)
        self.triggers = config.section(TriggersSection)
        self.acl = Acl(self.acl_section)
        self.registry = Registry()
        #: Where links in answers point (the ``web.link_base`` port: ``[http] public_url``).
        self.link_base = link_base
        self._own_reader = reader is None
        self.reader = reader or ProjectionReader(config.projections_path, threads=2, timeout=10.0)
        self._messenger = messenger
        self._workflow: TriggerWorkflow | None = None
        self._codes: KnownCodes | None = None
        self._starting = asyncio.Lock()
        self.limiter = limiter or RateLimiter()

    @classmethod
    def from_core(cls, core: _Core, **options: Any) -> BurstBot:
        """From anything holding the configuration, log, ingest and state (a core, a host)."""
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
                key = await load_code_key(self.state, self.triggers.code_secret)
                workflow = TriggerWorkflow(
                    self.log, self.ingest, self.reader.run, self.acl, self.triggers, key,
                    link_base=self.link_base, publish=self.publish, clock=self.clock,
                )
                workflow.messenger = self._messenger
                self._codes = KnownCodes(workflow)
                self._workflow = workflow
            return self._workflow

    def probe(self) -> dict[str, Any]:
        """The bot's own figures for ``/healthz`` (merged into the ``bot-expiry`` component)."""
        return {"rate_limit": self.limiter.health()}

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
            # The text, and the exception's message in the traceback, may hold a code.
            trace = "".join(traceback.format_exception(exc))
            log.error("bot command failed: %r\n%s", self._scrub(command.text[:MAX_RECORDED]), self._scrub(trace))
            return Reply(f"Sorry, something went wrong on my side ({type(exc).__name__}); it has been logged.")

    async def _handle(self, command: Command) -> Reply:
        workflow = await self.start()
        asker = command.asker
        grant = self.acl.grant(asker)
        verdict = self.limiter.check(asker.jid or f"{asker.transport}:{asker.room}", trusted=grant.listed)
        if verdict == "drop":
            return Reply("")  # no answer, no event: counted in the limiter
        assert self._codes is not None
        await self._codes.refresh()  # the codes of requests made since the last command
        parsed = parse_command(command.text)
        spec = self.registry.lookup(parsed.name) if parsed is not None else None
        if verdict == "refuse":
            limit = self.limiter.listed if grant.listed else self.limiter.unlisted
            outcome = Outcome.refused(
                f"Sorry, that is more than {limit} messages in {self.limiter.period:g} seconds; I will not answer "
                f"you for the next {self.limiter.period:g} seconds.",
                f"more than {limit} commands in {self.limiter.period:g}s",
            )
            logged = self._logged(spec, parsed) if parsed is not None else ""
            return await self._finish(command, spec, logged, outcome, "rate_limited")
        if parsed is None:
            return await self._finish(command, None, "", Outcome(False, "Say 'help' to see what you can ask me.", "empty"), "unknown")
        if len(command.text) > MAX_COMMAND_CHARS:
            outcome = Outcome.refused(
                f"Sorry, that is too long for a command ({len(command.text)} characters; at most {MAX_COMMAND_CHARS}).",
                "too long",
            )
            return await self._finish(command, spec, self._logged(spec, parsed), outcome, "refused")
        if spec is None:
            return await self._unknown(command, grant, parsed)
        logged = self._logged(spec, parsed, await self._known_burst(spec, parsed))
        refusal = self.registry.refusal(spec, grant)
        if refusal is not None:
            return await self._finish(command, spec, logged, self._refusal(spec, grant, refusal), "refused")
        if len(parsed.args) < spec.min_args or (spec.max_args is not None and len(parsed.args) > spec.max_args):
            text = f"Usage: {spec.usage} — {spec.summary}." + (f" {spec.details}" if spec.details else "")
            return await self._finish(command, spec, logged, Outcome.refused(text, "usage"), "refused")
        try:
            outcome = await self._run(spec, grant, parsed, workflow)
        except ReadModelError as exc:
            outcome = Outcome(False, f"Sorry, I cannot read the archive right now ({exc.message}). Try again in a moment.",
                              f"read model unavailable: {exc.message}")
            return await self._finish(command, spec, logged, outcome, "error")
        return await self._finish(command, spec, logged, outcome, "ok" if outcome.ok else "refused")

    # -- redaction ---------------------------------------------------------------------------

    def _is_telescope(self, word: str) -> bool:
        return self.triggers.telescope(word.strip(",.;:!?")) is not None

    def _keep(self, word: str) -> bool:
        """Words the shape rules leave alone: keywords and telescope names."""
        return is_keyword(word) or self._is_telescope(word)

    def _scrub(self, text: str, keep: Callable[[str], bool] | None = None) -> str:
        """Free text with every (part of a) code replaced (:func:`redact_text`), checked against
        the codes of recent requests as last refreshed."""
        return redact_text(text, self._codes or never, keep or self._keep)

    async def _known_burst(self, spec: CommandSpec, parsed: Parsed) -> str | None:
        """The burst id argument, if it looks like a code but names a known burst (``sbf93a…``)."""
        if spec.burst_arg is None or len(parsed.args) <= spec.burst_arg:
            return None
        typed = parsed.args[spec.burst_arg]
        if self._scrub(typed) == typed:
            return None  # nothing to keep
        try:
            found = await self.reader.run(read_burst.resolve_burst_id, typed)
        except ReadModelError:
            return None
        return typed if found else None

    def _logged(self, spec: CommandSpec | None, parsed: Parsed, burst: str | None = None) -> str:
        """The command as the log keeps it: normalised; of a code-taking command's arguments
        only telescope names and keywords, and the reason after the code; then every text
        rule (:mod:`~burstbus.bots.redact`) over the whole line. ``burst``: a known burst id
        (kept, unless it is the code of a recent request)."""
        keep = self._keep
        if burst is not None:
            def keep(word: str) -> bool:
                return self._keep(word) or word == burst
        if spec is not None and spec.takes_code:
            found = read_code_args(parsed.args, self._is_telescope)
            # deny: the words after the code are its reason; approve has none (could be code).
            rest = map(_quote, found.rest) if spec.name == "deny" else [CODE_MARK] * bool(found.rest)
            words = [parsed.name, *found.shown, *rest]
        else:
            words = [parsed.name, *map(_quote, parsed.args)]
            if spec is not None and spec.name in ("withdraw", "publish"):
                def keep(word: str) -> bool:
                    return self._keep(word) or is_request_id(word)
        return self._scrub(" ".join(words), keep)

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
            rows = await self.reader.run(read_lists.recent_triggers, 10)
            return Outcome(True, render.triggers_list(rows, self.link_base))
        if spec.name == "trigger":
            # The note goes into the log, the VOEvent and the pages: never a code in it.
            note = self._scrub(" ".join(args[2:]))[:500]
            outcome = await workflow.request(grant, args[0], args[1], note)
            if outcome.ok and outcome.request_id:
                outcome.text += f" To take it back: withdraw {outcome.request_id[:8]}"
            return outcome
        if spec.name == "approve":
            found = read_code_args(args, self._is_telescope)
            if found.found and found.rest:
                names = ", ".join(t.name for t in self.triggers.telescopes) or "none"
                return Outcome.refused(
                    "Sorry, I could not place every word after the code: give the code and, if you like, the "
                    f"telescope's name (one of {names}). Nothing was approved.", "usage",
                )
            return await workflow.approve(grant, normalise_code(found.code), found.telescope)
        if spec.name == "deny":
            found = read_code_args(args, self._is_telescope)
            return await workflow.deny(grant, normalise_code(found.code), self._scrub(" ".join(found.rest))[:500])
        if spec.name == "withdraw":
            return await workflow.withdraw(grant, args[0] if args else None)
        if spec.name == "checkpoint":
            return await self._checkpoint(grant)
        if spec.name == "process":
            return await self._process(grant, args)
        if spec.name == "retract":
            return await self._retract(grant, args)
        if spec.name == "publish":
            return await self._publish_draft(grant, args[0])
        raise AssertionError(f"command {spec.name} has no handler")

    async def _finish(self, command: Command, spec: CommandSpec | None, logged: str, outcome: Outcome, result: str) -> Reply:
        """Record ``ba.command``, then run what follows the record, then build the answer."""
        asker = command.asker
        if asker.nick:  # a nickname is the asker's free text too (and part of a hidden asker's actor)
            asker = dataclasses.replace(asker, nick=self._scrub(asker.nick))
        reason = None if result == "ok" or outcome.reason is None else self._scrub(outcome.reason)
        data: dict[str, Any] = {
            "jid": asker.jid, "via": asker.via, "room": asker.room, "nick": asker.nick,
            "command": spec.name if spec else None, "text": logged, "outcome": result, "reason": reason,
        }
        if len(logged) > MAX_RECORDED:
            # Of a long text only its start; its length and hash say what the rest was. The
            # hash is of the redacted text: one of the raw text could be brute-forced for a
            # code when the rest of the text is predictable.
            data["text"] = logged[: MAX_RECORDED - 1] + "…"
            data["text_length"] = len(command.text)
            data["text_sha256"] = hashlib.sha256(logged.encode("utf-8")).hexdigest()
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
        shown = self._scrub(parsed.name[:40])
        text = f"Sorry, I don't know '{shown}'."
        if spec is not None:
            text += f" Did you mean '{spec.usage}'?"
        text += " Say 'help' for what you can ask."
        if spec is not None and spec.takes_code and parsed.args:  # a mistyped approve/deny: no argument kept
            logged = f"{self._scrub(parsed.name)} {CODE_MARK}…"
        else:
            logged = self._logged(None, parsed)
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
            return Outcome.refused(f"Sorry, there is no command '{self._scrub(topic[:40])}'.{hint}", "help on unknown command")
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
            scopes = "every telescope" if grant.telescopes is None else (", ".join(grant.telescope_names(t.name for t in self.triggers.telescopes)) or "none")
            return Outcome(True, f"You are {grant.jid}: {role}; telescopes: {scopes}.")
        return Outcome(True, f"You are {grant.jid}: {role}.")

    async def _bursts(self, args: list[str]) -> Outcome:
        count = DEFAULT_BURSTS
        if args:
            try:
                count = int(args[0])
            except ValueError:
                return Outcome.refused(f"Sorry, '{self._scrub(args[0][:20])}' is not a number. Usage: bursts [N]", "usage")
            if not 1 <= count <= MAX_BURSTS:
                return Outcome.refused(f"Sorry, N must be between 1 and {MAX_BURSTS}.", "usage")
        rows = await self.reader.run(read_lists.recent_bursts, count)
        return Outcome(True, render.bursts_list(rows, self.link_base))

    async def _burst(self, what: str, typed: str) -> Outcome:
        def read(conn: Any) -> tuple[str | None, Any]:
            burst_id = read_burst.resolve_burst_id(conn, typed)
            if burst_id is None:
                return None, None
            if what == "notices":
                return burst_id, read_burst.notices(conn, burst_id)
            if what == "processes":
                return burst_id, read_burst.processes(conn, burst_id)
            return burst_id, read_burst.burst_view(conn, burst_id)

        burst_id, found = await self.reader.run(read)
        if burst_id is None:
            if what == "processes":  # processes may name a burst no notice has opened yet
                rows = await self.reader.run(read_burst.processes, typed)
                if rows:
                    return Outcome(True, render.processes_list(typed, rows, f"{self.link_base}/processes"))
            return Outcome.refused(f"Sorry, I know no burst called '{self._scrub(typed[:64])}'. 'bursts' lists the recent ones.",
                                   "unknown burst")
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
            said = self._scrub(str(exc))  # it quotes what was typed
            return Outcome.refused(f"Sorry, {said}.", f"bad position: {said}")
        hits, total = await self.reader.run(read_lists.near, ra, dec, radius, NEAR_LINES)
        return Outcome(True, render.near_list(hits, total, ra, dec, radius))

    async def _process(self, grant: Grant, args: list[str]) -> Outcome:
        """Request Process: ``process PIPELINE BURST [key=value …]``, recorded as ``process.asked``
        (just before this command's ``ba.command``); the orchestrator makes it a run."""
        assert grant.jid is not None  # not read-only: a hidden JID never gets here
        try:
            parameters, obs_id = asking.parse_assignments([self._scrub(a) for a in args[2:]])
            typed = args[1]

            def read(conn: Any) -> str | None:  # a burst with notices, or with processes only
                return read_burst.resolve_burst_id(conn, typed) or (typed if read_burst.processes(conn, typed) else None)

            burst_id = await self.reader.run(read)
            if burst_id is None:
                raise asking.Refused(f"Sorry, I know no burst called '{self._scrub(typed[:64])}'. 'bursts' lists the "
                                     "recent ones.", "unknown burst")
            asked = asking.ask(self.pipelines, args[0], burst_id, role=grant.role, actor=grant.actor,
                               requested_by=grant.jid, via="bot", parameters=parameters, obs_id=obs_id)
        except asking.Refused as refused:
            return Outcome.refused(refused.text, refused.reason)
        orchestrator = self.orchestrator() if self.orchestrator is not None else None
        if orchestrator is None:
            return Outcome.refused("Sorry, the orchestrator is not running here: nothing would start the run.",
                                   "orchestrator off")
        await orchestrator.adopt(burst_id)  # a burst from before the orchestrator's first start: its data too
        await self.log.append([asked.event])
        log.info("process %s on %s asked by %s (run %s)", asked.pipeline.name, burst_id, grant.jid, asked.run_id[:8])
        return Outcome(True, asking.describe(asked))

    def _drafts(self) -> NoticeDrafts | None:
        return self.drafts() if self.drafts is not None else None

    async def _retract(self, grant: Grant, args: list[str]) -> Outcome:
        """The Notice Creator from chat: draft the retraction of a burst; the other approvers
        are paged to publish it (``publication.drafted`` before this command's record)."""
        assert grant.jid is not None
        drafts = self._drafts()
        if drafts is None:
            return Outcome.refused("Sorry, the centre's notices are off here ([notices] enabled).", "notices off")
        typed = args[0]
        burst = await self.reader.run(read_burst.resolve_burst_id, typed) or typed
        reason = self._scrub(" ".join(args[1:]))[:500]
        result = await drafts.draft(grant.jid, grant.actor, {"burst_id": burst, "type": "retraction", "reason": reason})
        if not result.ok or result.draft_id is None:
            return Outcome.refused(result.text, "retraction not drafted")
        short = result.draft_id[:8]
        where = f"{self.link_base}/api/notices/drafts/{short}"
        others = [jid for jid in self.acl.with_role(Role.APPROVER) if jid != grant.jid]
        page = (f"{grant.jid} drafted the retraction of {burst}: {reason}. Packet {result.ivorn} ({where}). "
                f"To publish it: publish {short}")
        log.info("retraction of %s drafted by %s (draft %s)", burst, grant.jid, short)
        if not others:
            return Outcome(True, f"Drafted {short}: the retraction of {burst} ({result.ivorn}), but no other approver is "
                                 "listed to publish it.")
        return Outcome(True, f"Drafted {short}: the retraction of {burst} ({result.ivorn}); the packet: {where}. "
                             f"{', '.join(others)} can publish it (publish {short}); not you.",
                       pages=[Page(jid, page) for jid in others])

    async def _publish_draft(self, grant: Grant, typed: str) -> Outcome:
        """A second approver publishes a draft (``publication.draft_approved`` and the request)."""
        assert grant.jid is not None
        drafts = self._drafts()
        if drafts is None:
            return Outcome.refused("Sorry, the centre's notices are off here ([notices] enabled).", "notices off")
        result = await drafts.publish(grant.jid, grant.actor, typed)
        if not result.ok:
            return Outcome.refused(result.text, result.text)
        assert result.draft_id is not None
        pages = [Page(result.drafted_by, f"{grant.jid} published your draft {result.draft_id[:8]}: {result.ivorn}.")] \
            if result.drafted_by else []
        return Outcome(True, f"Published draft {result.draft_id[:8]}: {result.ivorn} goes out once the publisher has "
                             "it (the exact packet of the draft, or none if the burst changed since).", pages=pages)

    async def _checkpoint(self, grant: Grant) -> Outcome:
        """Sign the head now (recorded as ``log.checkpoint_signed`` before this command's own record)."""
        witness = self.witness() if self.witness is not None else None
        if witness is None:
            return Outcome.refused("The witness is off here ([witness] enabled): there is no key to sign with.", "witness off")
        try:
            signed = await witness.sign_now(actor=grant.actor)
        except NothingToSign:
            return Outcome.refused("The log is empty: nothing to sign yet.", "empty log")
        p = signed.checkpoint.payload
        again = " (that head was signed already: the same checkpoint)" if not signed.new else ""
        return Outcome(True, f"Signed the log's head{again}: seq {p.seq}, hash {p.hash}, key {p.key_id}; recorded at "
                             f"seq {signed.seq} and published where the witness publishes.")

    async def _status(self) -> Outcome:
        head = await self.log.head()
        components: Mapping[str, Mapping[str, Any]] = {}
        if self.health is not None:
            found = self.health()
            components = await found if inspect.isawaitable(found) else found
        chat = dict(self._messenger.health()) if self._messenger is not None else None
        try:
            checkpoints = await self.reader.run(read_lists.projection_positions)
            pending: int | None = await self.reader.run(read_lists.pending_count)
        except ReadModelError:
            checkpoints, pending = {}, None
        return Outcome(True, render.status_text(head.seq, checkpoints, components, chat, pending, self.limiter.health()))


# -- text helpers --------------------------------------------------------------------------


def _quote(word: str) -> str:
    return f'"{word}"' if (" " in word or not word) else word


def _position_words(args: list[str]) -> list[str] | None:
    """RA, DEC and optional RADIUS from what was typed (:func:`burstbus.angles.position_words`:
    the same reading as the notices page's cone filter)."""
    return position_words(" ".join(args))
