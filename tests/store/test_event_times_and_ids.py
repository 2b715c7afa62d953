"""The log's time text and derived ids: the fast ways must write exactly what the standard
library's ways write (ids already in logs, and string order being time order, depend on it)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

from burstbus.events import EVENT_ID_NAMESPACE, derived_event_id, format_time


def test_derived_ids_are_uuid5_of_the_joined_parts() -> None:
    rng = random.Random(20261203)
    alphabet = [chr(i) for i in range(1, 128)] + list("éß€\u2028\uffff😀\U0010ffff")
    for _ in range(20000):
        parts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60))) for _ in range(rng.randrange(1, 4))]
        assert derived_event_id(*parts) == str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts)))


def test_times_are_written_as_strftime_writes_them() -> None:
    rng = random.Random(20261203)
    start = datetime(1, 1, 1, tzinfo=UTC)
    span = (datetime(9999, 12, 31, tzinfo=UTC) - start).total_seconds()
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
    for _ in range(20000):
        moment = (start + timedelta(seconds=rng.uniform(86400, span - 86400))).astimezone(rng.choice(zones))
        assert format_time(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    naive = datetime(2026, 12, 3, 4, 5, 6, 7)
    assert format_time(naive) == "2026-12-03T04:05:06.000007Z"  # naive means UTC
    assert format_time(datetime(999, 1, 1, tzinfo=UTC)) == datetime(999, 1, 1).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
