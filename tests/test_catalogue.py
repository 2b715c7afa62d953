"""The vocabulary in code (burstbus/catalogue.py) and in docs/events.md are the same list, and
the trigger lifecycle table is a proper state machine."""

from __future__ import annotations

import re
from pathlib import Path

from burstbus import catalogue
from burstbus.catalogue import (
    TRIGGER_FINAL,
    TRIGGER_STATES,
    TRIGGER_TRANSITIONS,
    TRIGGER_TYPES,
    next_trigger_state,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"
#: A type named in a heading (### `x.y`) or as the first cell of a table row (| `x.y` |).
_DOCUMENTED = re.compile(r"^(?:#{2,4} .*?|\| )`([a-z_]+\.[a-z_]+)`", re.MULTILINE)


def documented_types() -> set[str]:
    text = DOC.read_text()
    return {name for name in _DOCUMENTED.findall(text) if not name.startswith(("nats.mappings",))}


def test_docs_events_md_describes_exactly_the_catalogue() -> None:
    documented = documented_types()
    assert documented - catalogue.EVENT_TYPES == set(), "documented but not in burstbus/catalogue.py"
    assert catalogue.EVENT_TYPES - documented == set(), "in burstbus/catalogue.py but not documented"


def test_every_type_constant_is_in_the_catalogue() -> None:
    constants = {value for name, value in vars(catalogue).items() if name.isupper() and isinstance(value, str) and "." in value}
    assert constants == set(catalogue.EVENT_TYPES)


def test_the_trigger_lifecycle_is_a_state_machine_where_the_first_decision_wins() -> None:
    assert set(TRIGGER_TYPES) <= catalogue.EVENT_TYPES
    for (state, kind), after in TRIGGER_TRANSITIONS.items():
        assert state in TRIGGER_STATES and after in TRIGGER_STATES and kind in TRIGGER_TYPES
    assert TRIGGER_FINAL == {"denied", "expired", "data_uploaded"}
    # the telescope's steps go forward only, from a delivered trigger, and may skip
    assert next_trigger_state("sent", "trigger.data_uploaded") == "data_uploaded"
    assert next_trigger_state("observed", "trigger.acknowledged") is None
    assert next_trigger_state("approved", "trigger.acknowledged") is None  # never before it went out
    assert next_trigger_state("unacknowledged", "trigger.acknowledged") == "acknowledged"  # a late answer
    assert next_trigger_state("acknowledged", "trigger.unacknowledged") is None
    # one decision: once approved/denied/expired, no other decision applies
    for decided in ("approved", "denied", "expired"):
        for kind in ("trigger.approved", "trigger.denied", "trigger.expired"):
            assert next_trigger_state(decided, kind) is None
    assert next_trigger_state("requested", "trigger.sent") is None  # never sent unapproved
    # every state is reachable from requested
    reached, frontier = {"requested"}, ["requested"]
    while frontier:
        state = frontier.pop()
        for (source, _), target in TRIGGER_TRANSITIONS.items():
            if source == state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(TRIGGER_STATES)
