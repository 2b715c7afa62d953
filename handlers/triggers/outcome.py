"""What a workflow step says back, for whichever door the person came through.

Why a value and not a chat reply: the workflow decides, the bot (or a web page) answers and
records. ``followup`` runs after the command has been recorded (the delivery of an approved
trigger, so ``ba.command`` precedes ``trigger.sent`` in the log), and its text is appended
to the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from burstbus.chat import Page


@dataclass
class Outcome:
    """The answer, pages to other people, and how ``ba.command`` records it."""

    ok: bool
    text: str
    reason: str | None = None
    pages: list[Page] = field(default_factory=list)
    request_id: str | None = None
    followup: Callable[[], Awaitable[Outcome]] | None = None

    @staticmethod
    def refused(text: str, reason: str | None = None) -> Outcome:
        return Outcome(False, text, reason or text)
