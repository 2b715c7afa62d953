"""The one exception the VOEvent examination layer raises.

Every transport (VTP, NATS, XMPP, HTTP) must NAK a refused packet with a reason a human can
act on, and record a ``voevent.rejected`` event that machines can count and filter. So a
refusal carries both: ``reason``, one sentence for people, and ``code``, a short stable token
for metrics, filters and tests.
"""

from __future__ import annotations

#: Every code a :class:`VOEventRejected` can carry, and what it means.
CODES: dict[str, str] = {
    "empty": "nothing was received (zero bytes or only whitespace)",
    "too_large": "the packet is larger than the configured size limit",
    "not_xml": "the bytes are not well-formed XML",
    "doctype": "the document has a DOCTYPE / entity declarations (never in a VOEvent)",
    "version": "the root is not a VOEvent 2.0 or 1.1 element, or its version does not match",
    "ivorn": "the IVORN is missing or not ivo://authority/path#localid",
    "role": "the role is not observation, prediction, utility or test",
    "schema": "the packet does not validate against the VOEvent schema",
}


class VOEventRejected(Exception):
    """A packet was refused; ``reason`` says why in one sentence, ``code`` is one of CODES."""

    def __init__(self, reason: str, code: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        super().__init__(reason, code)
        self.reason: str = reason
        self.code: str = code

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"VOEventRejected({self.reason!r}, code={self.code!r})"
