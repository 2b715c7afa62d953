"""What each role may see and do over HTTP: the one table every page and endpoint asks.

Why one table: the same person reaches burstbus through the bot and the web, and an auditor
must be able to read, in one place, who could have caused a write. Roles are ``[acl]``'s
(``viewer`` < ``ba`` < ``approver`` < ``admin``, :mod:`burstbus.acl`); a signed-in person has
the role ``[acl]`` gives their JID (an API token: the lower of that and the token's scope).
The two shared tokens of ``[http]`` keep their meaning for scripts that predate accounts: the
read token reads what a viewer reads; the write token acts as an operator (``admin``).

``docs/permissions.md`` is this table rendered (``python -m burstbus.bridges.http.permissions``;
a test keeps the two the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from burstbus.acl import Role


@dataclass(frozen=True)
class Rule:
    #: The lowest role that may; None: anyone, signed in or not.
    role: Role | None
    #: Which shared ``[http]`` token also may (``read``: read_token or token; ``write``: token).
    shared: str | None
    #: The pages and endpoints it covers.
    where: str


class Action(Enum):
    READ_ARCHIVE = "read the VOEvent archive, notices, bursts, operations"
    READ_PROCESSES = "read the process table (open to anyone with `[http] public_processes`)"
    READ_PROTECTED = "read the event log, trigger requests, notice requests and drafts, provenance"
    REQUEST_PROCESS = "request a pipeline run (Request Process)"
    ASK_NOTICE = "draft a notice of the centre's own (Notice Creator; a retraction needs an approver)"
    PUBLISH_NOTICE = "publish somebody else's notice draft (the second person)"
    REQUEST_NOTICE = "ask the notice pipeline for a notice directly, with no draft (pipelines, operators)"
    SUBMIT_VOEVENT = "submit a VOEvent"
    ANNOUNCE_DATA = "announce data or a pipeline's status (orchestrator HTTP)"


PERMISSIONS: dict[Action, Rule] = {
    Action.READ_ARCHIVE: Rule(None, None, "`/`, `/notices`, `/bursts`, `/apiv1/…`, `/api/bursts`, "
                                          "`/api/json-notices`, `/healthz`, `/metrics`"),
    Action.READ_PROCESSES: Rule(Role.VIEWER, "read", "`/processes`, `/api/processes`, a burst's runs, the overview's "
                                                     "counts, the live stream's process types"),
    Action.READ_PROTECTED: Rule(Role.VIEWER, "read", "`/log`, `/api/log`, `/api/triggers`, `/api/notices/{id}`, "
                                                     "`/notices/drafts`, `/api/notices/drafts/{id}`, `/api/provenance/…`, the live "
                                                     "stream's non-public types, a burst's triggers"),
    Action.REQUEST_PROCESS: Rule(Role.BA, "write", "`/processes/request` (form), `POST /api/processes/request`; "
                                                   "a pipeline's own `request_roles` may ask for more"),
    Action.ASK_NOTICE: Rule(Role.BA, None, "`/notices/new` (form), `POST /api/notices/drafts`"),
    Action.PUBLISH_NOTICE: Rule(Role.APPROVER, None, "`/notices/drafts/{id}` (its Publish button), "
                                                     "`POST /api/notices/drafts/{id}/publish`; never the drafter"),
    Action.REQUEST_NOTICE: Rule(Role.ADMIN, "write", "`POST /api/notices`"),
    Action.SUBMIT_VOEVENT: Rule(Role.ADMIN, "write", "`POST /api/voevents`"),
    Action.ANNOUNCE_DATA: Rule(Role.ADMIN, "write", "`POST /api/data`, `POST /api/processes/status`"),
}


def role_may(role: Role, action: Action) -> bool:
    needed = PERMISSIONS[action].role
    return needed is None or role >= needed


def shared_token_may(kind: str, action: Action) -> bool:
    """``kind``: ``read`` (the read token) or ``write`` (the write token, which also reads)."""
    shared = PERMISSIONS[action].shared
    return shared is not None and (shared == kind or (kind == "write" and shared == "read"))


def markdown() -> str:
    """The table as ``docs/permissions.md`` shows it."""
    roles = ("anyone", "viewer", "ba", "approver", "admin")
    lines = [
        "# Who may see and do what over HTTP",
        "",
        "Generated from `bridges/http/permissions.py` (`python -m burstbus.bridges.http.permissions`), the one",
        "place every page and endpoint asks. Roles are `[acl]`'s; a signed-in person has the role `[acl]`",
        "gives their JID (an API token: the lower of that and the token's scope). `public_read = true`",
        "opens every read to anyone. Every write from the web is an event with the person as actor",
        "(`web:alice@fsc.example`); with the shared write token the actor is `http:<address>`. A notice",
        "drafted by a person is published only by somebody else (two people, as for triggers); the shared",
        "token is nobody in particular, so it neither drafts nor publishes drafts.",
        "",
        "| what | " + " | ".join(roles) + " | shared token | where |",
        "|---|" + "---|" * len(roles) + "---|---|",
    ]
    for action, rule in PERMISSIONS.items():
        cells = []
        for name in roles:
            if name == "anyone":
                cells.append("yes" if rule.role is None else "")
            else:
                cells.append("yes" if rule.role is None or Role.parse(name) >= rule.role else "")
        token = {"read": "read or write token", "write": "write token", None: ""}[rule.shared]
        lines.append(f"| {action.value} | " + " | ".join(cells) + f" | {token} | {rule.where} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
