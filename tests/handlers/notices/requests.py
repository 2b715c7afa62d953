"""Notice requests the tests send: an SVOM alert sequence of our own (never the real packets)."""

from __future__ import annotations

from typing import Any

BURST = "sb26112055"

WAKEUP: dict[str, Any] = {
    "burst_id": BURST, "instrument": "ECLAIRs", "type": "eclairs-wakeup", "time": "2026-11-20T03:04:05.670Z",
    "ra": 123.4567, "dec": -12.3456, "err": 0.15, "authored": "2026-11-20T03:05:00Z",
    "params": {"SNR": 9.8, "Timescale": 20.48, "Trigger_Type": "IMT", "Slew_Status": "requested"},
}
SLEWING: dict[str, Any] = {
    **WAKEUP, "type": "slewing", "ra": 123.4512, "dec": -12.3401, "err": 0.08, "authored": "2026-11-20T03:07:00Z",
    "params": {"SNR": 11.2, "Slew_Status": "slewing"},
}
MXT: dict[str, Any] = {
    "burst_id": BURST, "instrument": "MXT", "type": "mxt-initial", "qualifier": "qf2", "time": "2026-11-20T03:04:05.670Z",
    "ra": 123.4501, "dec": -12.3399, "err": 0.02, "authored": "2026-11-20T03:15:00Z",
    "params": {"SNR": 14.0, "Within_ECLAIRs_R90": True, "ECLAIRs_Angle": 0.7},
}
RETRACTION: dict[str, Any] = {
    "burst_id": BURST, "type": "retraction", "instrument": "ECLAIRs", "authored": "2026-11-20T04:00:00Z",
    "reason": "a known X-ray binary flaring, not a GRB",
}
SEQUENCE = (WAKEUP, SLEWING, MXT, RETRACTION)
