"""Answers for a phone screen: short lines, times in UTC, a link to the web page for more.

Pure functions of the read side's typed rows (:mod:`burstbus.store.read`), so the wording can be
tested without a database or a chat server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from burstbus.notices import error_text
from burstbus.notices import position_text as position
from burstbus.store.read.rows import BurstRow, BurstView, ConeHit, NoticeRow, ProcessRow, TriggerRow

#: Lines of a list before "… and N more".
LIST_LINES = 10


def when(moment: str | None) -> str:
    """``2026-11-20T03:05:00.000000Z`` → ``11-20 03:05``."""
    if not moment:
        return "?"
    return f"{moment[5:10]} {moment[11:16]}"


def full_time(moment: str | None) -> str:
    if not moment:
        return "unknown"
    return f"{moment[:10]} {moment[11:19]} UTC"


def burst_line(row: BurstRow) -> str:
    instruments = "/".join(row.instruments) or "?"
    flag = " RETRACTED" if row.retracted else ""
    count = f"{row.notice_count} notice{'s' if row.notice_count != 1 else ''}"
    return f"{row.burst_id}{flag} · {when(row.last_notice_at)} · {count} · {instruments} · {position(row.ra, row.dec, row.err)}"


def bursts_list(rows: Sequence[BurstRow], link_base: str) -> str:
    if not rows:
        return "No bursts yet."
    return "\n".join([f"{len(rows)} most recent burst{'s' if len(rows) != 1 else ''}:", *map(burst_line, rows), f"{link_base}/bursts"])


def short_ivorn(ivorn: str) -> str:
    """``ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_1234`` → ``SWIFT#BAT_GRB_Pos_1234`` (the useful end)."""
    head, _, local = ivorn.partition("#")
    return f"{head.rsplit('/', 1)[-1]}#{local}" if local else ivorn


def notice_line(row: NoticeRow) -> str:
    flag = " RETRACTION" if row.retraction else ""
    where = f" {position(row.ra, row.dec, row.err)}" if row.ra is not None else ""
    return f"{when(row.notice_at)} {row.instrument or '?'}{flag}{where} {short_ivorn(row.ivorn)}"


def _tail(lines: list[str], total: int, what: str) -> list[str]:
    if total > len(lines):
        lines.append(f"… and {total - len(lines)} earlier {what}")
    return lines


def notices_list(burst_id: str, rows: Sequence[NoticeRow], link: str) -> str:
    if not rows:
        return f"{burst_id}: no notices."
    shown = [notice_line(r) for r in rows[-LIST_LINES:]]
    return "\n".join([f"{burst_id}: {len(rows)} notice{'s' if len(rows) != 1 else ''}", *_tail(shown, len(rows), "notices"), link])


def process_line(row: ProcessRow) -> str:
    ident = "/".join(x for x in (row.obs_id, row.pass_id) if x)
    tries = f" (attempt {row.attempts})" if row.attempts > 1 else ""
    tail = f" — {row.last_log[:80]}" if row.status == "failed" and row.last_log else ""
    return f"{row.process}{' ' + ident if ident else ''}: {row.status}{tries} {when(row.updated_at)}{tail}"


def processes_list(burst_id: str, rows: Sequence[ProcessRow], link: str) -> str:
    if not rows:
        return f"{burst_id}: no pipeline processes reported."
    counts = Counter(r.status for r in rows)
    head = f"{burst_id}: {len(rows)} process{'es' if len(rows) != 1 else ''} (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
    shown = [process_line(r) for r in rows[:LIST_LINES]]
    if len(rows) > LIST_LINES:
        shown.append(f"… and {len(rows) - LIST_LINES} more")
    return "\n".join([head, *shown, link])


def trigger_line(row: TriggerRow) -> str:
    who = row.requested_by.split("@")[0]
    base = f"{row.request_id[:8]} {row.telescope} on {row.burst_id} by {who} {when(row.requested_at)}: "
    if row.state == "requested":
        state = f"waiting for approval until {when(row.expires_at)}"
    elif row.state == "approved":
        state = f"approved by {row.approved_by}, sending"
    elif row.state == "sent":
        state = f"SENT {when(row.sent_at)} (approved by {row.approved_by})"
    elif row.state == "denied" and row.denied_by == row.requested_by:
        state = "withdrawn by the requester"
    elif row.state == "denied":
        state = f"refused by {row.denied_by}" + (f": {row.reason}" if row.reason else "")
    elif row.state == "failed":
        state = f"FAILED: {row.reason}"
    elif row.state == "unacknowledged":
        state = f"SENT {when(row.sent_at)}, NOT ACKNOWLEDGED by {when(row.unacknowledged_at)}"
    elif row.state in FOLLOWUP_STEPS:
        steps = [f"{words} {when(getattr(row, f'{step}_at'))}" for step, words in FOLLOWUP_STEPS.items()
                 if getattr(row, f"{step}_at")]
        state = ", ".join([f"sent {when(row.sent_at)}", *steps])
        if row.data_location:
            state += f" — data: {row.data_location}"
    else:
        state = row.state
    return base + state


#: What a telescope says after a trigger, in its order (each state has a ``<state>_at`` column).
FOLLOWUP_STEPS = {"acknowledged": "acknowledged", "observing": "observing", "observed": "observed",
                  "data_uploaded": "data uploaded"}


def triggers_list(rows: Sequence[TriggerRow], link_base: str) -> str:
    if not rows:
        return "No trigger requests yet."
    pending = sum(1 for r in rows if r.state == "requested")
    return "\n".join([f"Trigger requests ({pending} waiting for approval):", *map(trigger_line, rows)])


def burst_summary(view: BurstView, link: str) -> str:
    b = view.burst
    lines = [
        f"{b.burst_id}{' — RETRACTED' if b.retracted else ''}",
        f"Event time {full_time(b.event_time)}; {b.notice_count} notice{'s' if b.notice_count != 1 else ''} "
        f"{when(b.first_notice_at)}–{when(b.last_notice_at)} from {', '.join(b.instruments) or '?'}",
        f"Best position: {position(b.ra, b.dec, b.err)}" + (f" ({short_ivorn(b.best_ivorn)})" if b.best_ivorn else ""),
    ]
    if view.notices:
        lines.append("Latest notices:")
        lines += [f"  {notice_line(n)}" for n in view.notices[-3:]]
    if view.processes:
        counts = Counter(p.status for p in view.processes)
        lines.append("Processes: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        lines += [f"  {process_line(p)}" for p in view.processes if p.status == "failed"][:3]
    else:
        lines.append("Processes: none reported")
    if view.triggers:
        lines.append("Triggers:")
        lines += [f"  {trigger_line(t)}" for t in view.triggers[:5]]
    else:
        lines.append("Triggers: none")
    lines.append(link)
    return "\n".join(lines)


def near_list(hits: Sequence[ConeHit], total: int, ra: float, dec: float, radius: float) -> str:
    centre = f"RA {ra:.4f}° Dec {dec:+.4f}° within {radius:g}°"
    if not hits:
        return f"No notices {centre}."
    lines = [f"{total} notice{'s' if total != 1 else ''} {centre}" + (f" (nearest {len(hits)}):" if total > len(hits) else ":")]
    for hit in hits:
        burst = f" [{hit.burst_id}]" if hit.burst_id else ""
        lines.append(f"{hit.distance:.3f}° {when(hit.authored)} {short_ivorn(hit.ivorn)}{burst}{error_text(hit.error)}")
    return "\n".join(lines)


def status_text(
    head_seq: int,
    checkpoints: Mapping[str, int],
    components: Mapping[str, Mapping[str, Any]],
    chat: Mapping[str, Any] | None,
    pending: int | None,
    rate_limit: Mapping[str, Any] | None = None,
) -> str:
    lines = [f"Log: {head_seq} events."]
    if checkpoints:
        behind = {n: head_seq - s for n, s in checkpoints.items() if head_seq - s > 0}
        lines.append("Read models: up to date." if not behind else
                     "Read models behind the log: " + ", ".join(f"{n} by {d}" for n, d in sorted(behind.items())))
    up = sorted(n for n, h in components.items() if h.get("up"))
    down = sorted(n for n, h in components.items() if not h.get("up"))
    if components:
        lines.append("Up: " + (", ".join(up) or "nothing"))
    for name in down:
        health = components[name]
        why = f": {health['failure']}" if health.get("failure") else ""
        since = f" since {when(str(health['failed_at']))}" if health.get("failed_at") else ""
        lines.append(f"DOWN {name}{why}{since}")
    if chat is not None:
        state = "connected" if chat.get("up") else "NOT connected"
        last = f", last activity {when(str(chat['last_activity']))}" if chat.get("last_activity") else ""
        lines.append(f"Chat: {state}{last}")
    if pending is not None:
        lines.append(f"Trigger requests waiting for approval: {pending}")
    if rate_limit and (rate_limit.get("refused") or rate_limit.get("dropped")):
        now = ", ".join(rate_limit.get("limited_now") or []) or "nobody now"
        lines.append(f"Rate limited: {rate_limit.get('refused', 0)} times, {rate_limit.get('dropped', 0)} messages dropped ({now})")
    return "\n".join(lines)
