"""What the workflow says to people: answers, pages and refusals, as pure functions.

Why apart from the decisions: the wording is read on a phone at 3 a.m. and changes for
reasons of its own (clarity, a new channel); keeping it here lets it be read and tested
without a log, and keeps :mod:`.workflow` about who may do what and in which order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from burstbus.notices import position_text

from .codes import CODE_LENGTH, FAILURE_WINDOW, format_code
from .request import Request


def hhmm(moment: str) -> str:
    return f"{moment[11:16]} UTC"


def position(params: Mapping[str, Any]) -> str:
    err = params.get("err")
    return position_text(float(params["ra"]), float(params["dec"]), None if err is None else float(err))


# -- codes -----------------------------------------------------------------------------------


def too_many_wrong_codes() -> str:
    return (f"Sorry, too many wrong codes from you in the last {FAILURE_WINDOW / 60:.0f} minutes; "
            "please wait a few minutes and copy the code from the page you received.")


def not_a_code(verb: str) -> str:
    return (f"Sorry, that is not an approval code: codes are {CODE_LENGTH} letters and digits like "
            f"{format_code('K7QXM2PD')}. Usage: {verb} CODE")


def no_such_code(code_minutes: int) -> str:
    return ("Sorry, no trigger request has that code. Check it against the page you received "
            f"(codes are single use and expire after {code_minutes} minutes).")


def already_used(request: Request) -> str:
    """A code whose request is decided already."""
    by = request.decided_by or "someone"
    what = {
        "approved": f"was approved by {by}",
        "sent": f"was approved by {by} and sent",
        "failed": f"was approved by {by} but could not be delivered",
        "denied": "was withdrawn by its requester" if request.withdrawn else f"was refused by {by}",
        "expired": "expired unapproved",
        "unacknowledged": f"was approved by {by} and sent (not acknowledged yet)",
        **{state: f"was approved by {by} and sent; the telescope {words}" for state, words in STEP_WORDS.items()},
    }.get(request.state, f"is {request.state}")
    return (
        f"Sorry, that code was already used: the {request.telescope} request on {request.burst_id} "
        f"{what}. Codes work once."
    )


def expired_code(request: Request) -> str:
    return (f"Sorry, that code expired at {hhmm(request.expires_at)}. Ask for a new request: "
            f"trigger {request.telescope} {request.burst_id}")


# -- request ---------------------------------------------------------------------------------


def unknown_telescope(name: str, known: Sequence[str]) -> str:
    return f"Sorry, I know no telescope called {name!r} (known: {', '.join(known) or 'none is configured'})."


def may_not_request(telescope: str, mine: Sequence[str]) -> str:
    return (f"Sorry, you may not request {telescope} triggers (your telescopes: {', '.join(mine) or 'none'}). "
            "An admin can change [acl].")


def unknown_burst(typed: str) -> str:
    return f"Sorry, I know no burst called {typed!r}. 'bursts' lists the recent ones."


def no_position(burst_id: str, telescope: str) -> str:
    return f"Sorry, {burst_id} has no position yet, so there is nothing to point {telescope} at."


def no_approver(telescope: str, two_person: bool) -> str:
    return (f"Sorry, nobody {'else ' if two_person else ''}may approve {telescope} triggers, "
            "so the request could never be approved. An admin can add an approver in [acl].")


def request_about(telescope: str, burst_id: str, note: str) -> str:
    return f"{telescope} on {burst_id}" + (f" ({note})" if note else "")


def approvers_page(requester: str, about: str, params: Mapping[str, Any], code: str, telescope: str,
                   expires_at: str, link: str) -> str:
    shown = format_code(code)
    return (
        f"Trigger request from {requester}: {about}. {position(params)}. "
        f"To approve: approve {shown} {telescope} — to refuse: deny {shown} REASON. "
        f"Code valid until {hhmm(expires_at)}. {link}"
    )


def request_recorded(request_id: str, about: str, params: Mapping[str, Any], approvers: Sequence[str],
                     two_person: bool, expires_at: str) -> str:
    second = " (someone other than you must approve)" if two_person else ""
    return (
        f"Trigger request {request_id[:8]} recorded: {about}, {position(params)}. "
        f"Approval code sent to {', '.join(approvers)}{second}; it expires at {hhmm(expires_at)}."
    )


# -- approve and deny ------------------------------------------------------------------------


def code_for_other_telescope(request: Request, named: str) -> str:
    return f"Sorry, that code approves a {request.telescope} trigger, not {named}. Nothing was sent."


def telescope_gone(telescope: str) -> str:
    return f"Sorry, {telescope} is no longer configured, so it cannot be triggered."


def may_not_approve(telescope: str, approvers: Sequence[str]) -> str:
    return (f"Sorry, you may not approve {telescope} triggers. The approvers were paged: "
            f"{', '.join(approvers) or 'none'}.")


def needs_two_people(telescope: str) -> str:
    return f"Sorry, {telescope} needs two people: someone other than you must approve your own request."


def approved(request: Request) -> str:
    return f"Approved: {request.telescope} on {request.burst_id} (request {request.short})."


def may_not_refuse(telescope: str) -> str:
    return f"Sorry, you may not refuse {telescope} triggers."


def refused_page(by: str, request: Request, reason: str) -> str:
    return f"{by} refused your {request.telescope} trigger on {request.burst_id}" + (f": {reason}" if reason else ".")


def refused(request: Request) -> str:
    return f"Refused: {request.telescope} on {request.burst_id} (request {request.short}). Nothing was sent."


# -- withdraw --------------------------------------------------------------------------------


def not_pending(request: Request) -> str:
    """Why a request can no longer be withdrawn."""
    by = request.decided_by or "someone"
    withdrawn = request.state == "denied" and request.decided_by == request.requested_by
    what = {
        "approved": f"was already approved by {by}",
        "sent": f"was already approved by {by} and sent",
        "failed": f"was already approved by {by} (its delivery failed)",
        "denied": "was already withdrawn" if withdrawn else f"was already refused by {by}",
        "expired": "already expired unapproved",
    }.get(request.state, f"is {request.state}")
    return f"Sorry, request {request.short} ({request.telescope} on {request.burst_id}) {what}: nothing to withdraw."


def expired_before_withdrawal(request: Request) -> str:
    return (f"Request {request.short} expired at {hhmm(request.expires_at)} without approval: nothing "
            "was sent and there is nothing to withdraw.")


def withdrawn_about(request: Request) -> str:
    return f"{request.telescope} trigger request on {request.burst_id} (request {request.short})"


def withdrawn_page(by: str, about: str) -> str:
    return f"{by} withdrew the {about}: the approval code you were sent for it is void."


def withdrawn(about: str, approvers: Sequence[str]) -> str:
    told = f" I told {', '.join(approvers)}." if approvers else ""
    return f"Withdrawn: your {about}. Nothing was sent.{told}"


NOT_A_REQUEST_ID = ("Sorry, that is not a request id: it is the 8 characters after 'Trigger request' in my "
                    "answer to 'trigger' ('triggers' lists them). Usage: withdraw [REQUEST]")
NO_SUCH_REQUEST = "Sorry, no recent trigger request has that id ('triggers' lists them)."
NOTHING_TO_WITHDRAW = "You have no trigger request waiting for approval."


def ambiguous_request(matches: Sequence[Request]) -> str:
    return ("Sorry, several requests start like that: " + ", ".join(r.request_id[:12] for r in matches)
            + ". Give more of the id.")


def not_the_requester(request: Request) -> str:
    return (f"Sorry, only {request.requested_by}, who asked for it, can withdraw request {request.short}; "
            "an approver can refuse it with 'deny CODE'.")


def several_pending(pending: Sequence[Request]) -> str:
    listed = ", ".join(f"{r.short} ({r.telescope} on {r.burst_id})" for r in pending)
    return f"You have {len(pending)} requests waiting: {listed}. Say 'withdraw REQUEST' with one of them."


# -- expiry and delivery ---------------------------------------------------------------------


def expired_unapproved(request: Request) -> str:
    return (f"Your {request.telescope} trigger request on {request.burst_id} expired at "
            f"{hhmm(request.expires_at)} without approval. Nothing was sent.")


def delivery_summary(request: Request, approver: str, ivorn: str) -> str:
    """The one line sent beside the VOEvent to a telescope's JIDs."""
    return (f"TRIGGER {request.telescope}: {request.burst_id} {position(request.params)} "
            f"(request {request.short}, by {request.requested_by}, approved by {approver}) {ivorn}")


def sent(request: Request, channels: Mapping[str, Any], ivorn: str) -> str:
    where = ["VTP"] + ([f"XMPP {', '.join(channels['xmpp'])}"] if channels.get("xmpp") else [])
    where += [f"NATS {channels['nats']}"] if "nats" in channels else []
    return f"Sent to {request.telescope} via {'; '.join(where)}: {ivorn}"


def sent_page(approver: str, request: Request, ivorn: str) -> str:
    return f"{approver} approved your {request.telescope} trigger on {request.burst_id}; sent ({ivorn})."


def delivery_failed_page(request: Request, reason: str) -> str:
    return (f"The {request.telescope} trigger on {request.burst_id} (request {request.short}) was approved "
            f"but could not be delivered: {reason}")


def delivery_failed(reason: str) -> str:
    return f"Sorry, delivery failed: {reason}"


# -- after delivery: what the telescope says back ------------------------------------------

STEP_WORDS = {
    "acknowledged": "acknowledged the trigger",
    "observing": "started observing",
    "observed": "finished observing",
    "data_uploaded": "uploaded its data",
}


def followup_page(telescope: str, burst_id: str, request_id: str, state: str, data_location: str | None,
                  link: str) -> str:
    """To the requester: the telescope's step (a packet citing the trigger)."""
    where = f" at {data_location}" if data_location else ""
    return f"{telescope} {STEP_WORDS.get(state, state)} on {burst_id} (trigger {request_id[:8]}){where}. {link}"


def unacknowledged_page(telescope: str, burst_id: str, request_id: str, sent_at: str, minutes: float, link: str) -> str:
    """To the requester and the telescope's approvers: the telescope said nothing in time."""
    return (f"No acknowledgement from {telescope} for the trigger on {burst_id} (trigger {request_id[:8]}), "
            f"sent {hhmm(sent_at)}, after {minutes:g} minutes: check the telescope. {link}")
