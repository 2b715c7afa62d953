"""The bot's commands, declared once: name, usage, help, minimum role, read-only or not.

One table decides both what ``help`` shows an asker and what they may run, so the two can
never disagree. ``read_only`` commands are the only ones open to an asker whose real JID a
room hides. ``takes_code`` marks the commands whose arguments carry an approval code: the log
keeps only telescope names and keywords of those arguments (:mod:`burstbus.bots.redact`).
"""

from __future__ import annotations

from dataclasses import dataclass

from burstbus.acl import Grant, Role


@dataclass(frozen=True)
class CommandSpec:
    name: str
    #: Arguments as shown in help (``ID``, ``[N]``).
    args: str
    summary: str
    role: Role
    read_only: bool
    min_args: int = 0
    #: None: the rest of the line is free text (a note, a reason).
    max_args: int | None = 0
    details: str = ""
    aliases: tuple[str, ...] = ()
    #: The arguments hold an approval code (never logged; see bots/redact.py).
    takes_code: bool = False
    #: The position of a burst id argument: kept in the log when it names a known burst, even
    #: if it looks like a code.
    burst_arg: int | None = None

    @property
    def usage(self) -> str:
        return f"{self.name} {self.args}".strip()


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("help", "[command]", "what you can ask me", Role.NONE, True, 0, 1, aliases=("?", "commands")),
    CommandSpec("whoami", "", "who I think you are, and your rights", Role.NONE, True, aliases=("who",)),
    CommandSpec("bursts", "[N]", "the N most recent bursts (default 5)", Role.VIEWER, True, 0, 1, aliases=("list", "recent")),
    CommandSpec("burst", "ID", "a burst: summary, notices, processes, triggers", Role.VIEWER, True, 1, 1,
                details="ID as in 'bursts' (sb26021102, S190518bb, swift-655721); case does not matter.",
                aliases=("info", "show"), burst_arg=0),
    CommandSpec("notices", "ID", "a burst's notices", Role.VIEWER, True, 1, 1, aliases=("notice",), burst_arg=0),
    CommandSpec("processes", "ID", "a burst's pipeline processes", Role.VIEWER, True, 1, 1, aliases=("procs",),
                burst_arg=0),
    CommandSpec("near", "RA DEC [RADIUS]", "notices near a sky position (cone search)", Role.VIEWER, True, 2, 7,
                details="RA as 188.73, 12:34:56.7 or 12h34m56s; Dec as -12.5, -12:30:00 or -12d30m; "
                        "RADIUS in degrees (default 1), or 30' / 30arcmin / 10\".",
                aliases=("cone",)),
    CommandSpec("status", "", "health of burstbus and its links", Role.VIEWER, True, aliases=("health",)),
    CommandSpec("triggers", "", "pending and recent trigger requests", Role.VIEWER, True, aliases=("requests",)),
    CommandSpec("trigger", "TELESCOPE BURST [note]", "ask for a follow-up observation (needs approval)", Role.BA, False, 2, None,
                details="The approvers get a one-time code by direct message; the trigger is sent once one "
                        "of them approves (someone other than you, on two-person telescopes).",
                burst_arg=1),
    CommandSpec("withdraw", "[REQUEST]", "take back your own pending trigger request", Role.BA, False, 0, 1,
                details="REQUEST is the short id from my answer to 'trigger' (also in 'triggers'); leave it out "
                        "when you have one request waiting. The approvers are told their code is void.",
                aliases=("cancel",)),
    CommandSpec("approve", "CODE [TELESCOPE]", "approve a trigger request with its code", Role.APPROVER, False, 1, None,
                details="CODE from the page you received (case, spaces and dashes do not matter). Naming the "
                        "telescope makes sure the code approves what you think it does.",
                takes_code=True),
    CommandSpec("deny", "CODE [reason]", "refuse a trigger request", Role.APPROVER, False, 1, None,
                details="CODE from the page you received; the requester is told, with your reason. "
                        "A requester takes back their own request with 'withdraw'.",
                takes_code=True, aliases=("refuse",)),
    CommandSpec("process", "PIPELINE BURST [key=value …]", "run a pipeline on a burst (Request Process)", Role.BA, False,
                2, None,
                details="Parameters override the pipeline's defaults (threshold=5); obs=ID picks an observation. "
                        "The run starts as soon as its inputs are there; 'processes BURST' shows it. The pipeline "
                        "says who may ask ([[pipelines]] request_roles).",
                aliases=("reprocess", "run"), burst_arg=1),
    CommandSpec("retract", "BURST reason", "draft the retraction of a burst (a second approver publishes it)",
                Role.APPROVER, False, 2, None,
                details="I record the draft with the exact packet it would publish (every notice the centre "
                        "issued for the burst cited) and page the other approvers; one of them says "
                        "'publish DRAFT'. Nothing goes out before.",
                burst_arg=0),
    CommandSpec("publish", "DRAFT", "publish another approver's notice draft", Role.APPROVER, False, 1, 1,
                details="DRAFT is the short id from the draft's page. Never your own draft: a notice needs two people."),
    CommandSpec("checkpoint", "", "sign the log's head now and publish it (the witness)", Role.ADMIN, False,
                details="The centre's key signs the newest record's seq and hash; the checkpoint goes where the "
                        "witness publishes (NATS, rooms, Slack, its file). 'burstbus verify --against' holds "
                        "any copy of the log to it."),
)


class Registry:
    """Lookup by name or alias (case-insensitive), and what a grant may run."""

    def __init__(self, specs: tuple[CommandSpec, ...] = COMMANDS):
        self.specs = specs
        self._by_name: dict[str, CommandSpec] = {}
        for spec in specs:
            for name in (spec.name, *spec.aliases):
                if name in self._by_name:
                    raise ValueError(f"command name {name!r} declared twice")
                self._by_name[name] = spec

    def lookup(self, name: str) -> CommandSpec | None:
        return self._by_name.get(name.casefold())

    def refusal(self, spec: CommandSpec, grant: Grant) -> str | None:
        """Why this grant may not run this command (None: it may)."""
        if not spec.read_only and not grant.identified:
            return "hidden-jid"
        if grant.role < spec.role:
            return "role"
        return None

    def allowed(self, grant: Grant) -> list[CommandSpec]:
        return [s for s in self.specs if self.refusal(s, grant) is None]

    def names(self, grant: Grant) -> list[str]:
        """Names and aliases the grant may run (for did-you-mean)."""
        return [n for n, s in self._by_name.items() if self.refusal(s, grant) is None]
