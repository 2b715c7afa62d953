"""Request Process by hand: who may ask for which pipeline, and the ``process.asked`` event (pure).

Why one place for both doors (the bot's ``process PIPELINE BURST [key=value …]`` and the
API's ``POST /api/processes/request``): the same request must be judged the same way and
recorded the same way whoever typed it. The decision about the run itself is the core's
(:mod:`.core`): a ``process.asked`` is a run of its own, started when its inputs are there.

Who may ask: a pipeline's ``request_roles`` name the roles allowed (a role includes the
ones below it, as everywhere in ``[acl]``), so ``["ba"]`` lets BAs, approvers and admins ask.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from burstbus.acl import Role
from burstbus.catalogue import PROCESS_ASKED
from burstbus.events import Event, new_event_id

from . import ids
from .config import Pipeline, PipelinesSection

_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_VALUE_CHARS = 200
#: Words that name the observation of a per-observation run instead of a parameter.
OBS_KEYS = ("obs", "obs_id")


class Refused(ValueError):
    """A request by hand that is refused: ``reason`` for the log, ``text`` for the person."""

    def __init__(self, text: str, reason: str):
        super().__init__(reason)
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Asked:
    """A request that passed: its event, and the run it will be."""

    event: Event
    pipeline: Pipeline
    run_id: str
    changed: dict[str, str]


def may_ask(pipeline: Pipeline, role: Role) -> bool:
    """Whether ``role`` is one of the pipeline's ``request_roles`` (or above one)."""
    allowed = [Role.parse(r) for r in pipeline.request_roles]
    return bool(allowed) and role >= min(allowed)


def parse_assignments(words: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """``key=value`` words → (parameters, obs id); raise :class:`Refused` on a malformed one."""
    parameters: dict[str, str] = {}
    obs_id: str | None = None
    for word in words:
        key, sep, value = word.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise Refused(f"Sorry, I read parameters as key=value; '{word[:40]}' is not one.", "usage")
        if not _PARAMETER.match(key) or len(value) > MAX_VALUE_CHARS or any(c < " " for c in value):
            raise Refused(f"Sorry, '{word[:40]}' is not a parameter I can pass on (name: letters, digits, _ . -; "
                          f"value: up to {MAX_VALUE_CHARS} characters).", "bad parameter")
        if key in OBS_KEYS:
            obs_id = value
        else:
            parameters[key] = value
    return parameters, obs_id


def ask(
    pipelines: PipelinesSection,
    name: str,
    burst_id: str,
    *,
    role: Role,
    actor: str,
    requested_by: str,
    via: str,
    parameters: Mapping[str, Any] | None = None,
    obs_id: str | None = None,
) -> Asked:
    """The ``process.asked`` for a request, or :class:`Refused` (unknown pipeline, a role the
    pipeline does not allow, a bad parameter)."""
    pipeline = pipelines.pipeline(name)
    if pipeline is None:
        known = ", ".join(p.name for p in pipelines.pipelines) or "none are configured"
        raise Refused(f"Sorry, I know no pipeline '{name[:40]}' (pipelines: {known}).", "unknown pipeline")
    if not may_ask(pipeline, role):
        roles = " or ".join(pipeline.request_roles) or "nobody"
        raise Refused(f"Sorry, {pipeline.name} may be requested by {roles} (and above); you are {role.label}.",
                      f"needs role {min(pipeline.request_roles, key=Role.parse) if pipeline.request_roles else 'none'} "
                      f"for {pipeline.name}")
    given: dict[str, str] = {}
    for key, value in (parameters or {}).items():
        text = str(value)
        if not _PARAMETER.match(str(key)) or len(text) > MAX_VALUE_CHARS or any(c < " " for c in text):
            raise Refused(f"Sorry, '{str(key)[:40]}' is not a parameter I can pass on.", "bad parameter")
        given[str(key)] = text
    changed = {k: v for k, v in given.items() if pipeline.parameters.get(k) != v}
    data: dict[str, Any] = {"pipeline": pipeline.name, "burst_id": burst_id, "obs_id": obs_id, "parameters": given,
                            "requested_by": requested_by, "via": via}
    event = Event(PROCESS_ASKED, data, stream=burst_id, actor=actor, id=new_event_id())
    return Asked(event, pipeline, ids.asked_run_id(event.id), changed)


def describe(asked: Asked) -> str:
    """What the asker is told once the request is recorded."""
    p = asked.pipeline
    change = ", ".join(f"{k}={v}" + (f" (default {p.parameters[k]})" if k in p.parameters else "")
                       for k, v in asked.changed.items())
    burst = str(asked.event.data["burst_id"])
    obs = asked.event.data.get("obs_id")
    return (f"Recorded: run {asked.run_id[:8]} of {p.name} on {burst}{f' obs {obs}' if obs else ''}"
            f"{' with ' + change if change else ' with its default parameters'}. It starts as soon as its inputs "
            f"({', '.join(p.needs)}) are there; 'processes {burst}' shows it.")
