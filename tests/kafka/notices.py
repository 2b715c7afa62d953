"""JSON notices as GCN Kafka carries them (small, written here: the suite never needs shared/)."""

from __future__ import annotations

import json
from typing import Any


def lvk(superevent: str = "S261202ab", alert: str = "PRELIMINARY", *, created: str = "2026-12-02T03:00:00Z",
        far: float = 1.2e-10, significant: bool = True, skymap: bool = True, **extra: Any) -> bytes:
    event = None if alert == "RETRACTION" else {
        "time": "2026-12-02T02:59:30.123Z", "far": far, "significant": significant, "instruments": ["H1", "L1", "V1"],
        "group": "CBC", "pipeline": "gstlal", "search": "AllSky", "properties": {"HasNS": 0.9},
        "classification": {"BNS": 0.95}, "skymap": "U0lNUExFICA9IFQ=" if skymap else None,
    }
    body = {"alert_type": alert, "time_created": created, "superevent_id": superevent,
            "urls": {"gracedb": f"https://gracedb.ligo.org/superevents/{superevent}/view/"},
            "event": event, "external_coinc": None, **extra}
    return json.dumps(body).encode()


def einstein_probe(ident: str = "01709000001", *, ra: float = 120.5, dec: float = -20.25, err: float = 0.05) -> bytes:
    return json.dumps({
        "$schema": "https://gcn.nasa.gov/schema/v4.1.0/gcn/notices/einstein_probe/wxt/alert.schema.json",
        "instrument": "WXT", "trigger_time": "2026-12-02T04:05:06.7Z", "id": [ident], "ra": ra, "dec": dec,
        "ra_dec_error": err, "image_energy_range": [0.5, 4], "net_count_rate": 0.8, "image_snr": 9.1,
    }).encode()


def icecube_lvk(superevent: str = "S261202ab") -> bytes:
    return json.dumps({
        "$schema": "https://gcn.nasa.gov/schema/v4.1.0/gcn/notices/icecube/lvk_nu_track_search.schema.json",
        "type": "IceCube LVK Alert Nu Track Search", "ref_ID": superevent, "alert_datetime": "2026-12-02T03:10:00Z",
        "pval_generic": 0.4, "n_events_coincident": 0, "observation_start": "2026-12-02T02:49:30Z",
        "observation_stop": "2026-12-02T03:09:30Z",
    }).encode()


def guano(trigger: int = 1234567) -> bytes:
    return json.dumps({
        "$schema": "https://gcn.nasa.gov/schema/v4.1.0/gcn/notices/swift/bat/guano.schema.json",
        "mission": "Swift", "instrument": "BAT", "messenger": "EM", "record_number": 1,
        "alert_datetime": "2026-12-02T05:00:00Z", "alert_tense": "current", "alert_type": "initial",
        "trigger_time": "2026-12-02T04:59:00Z", "follow_up_event": "S261202ab", "follow_up_type": "GW",
        "id": [trigger], "ra": 10.0, "dec": 20.0, "ra_dec_error": [0.1, 0.2], "rate_snr": 5.0,
    }).encode()


def heartbeat(when: str = "2026-12-02T06:00:00Z") -> bytes:
    return json.dumps({"$schema": "https://gcn.nasa.gov/schema/v4.1.0/gcn/notices/core/Alert.schema.json",
                       "alert_datetime": when}).encode()
