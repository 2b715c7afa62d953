"""Every real packet in the shared corpus (skipped when /work/shared/voevents is absent).

The corpus holds ~2,030 real VOEvents (GCN, SVOM, LVK, 4PiSky, Gaia, ...); see its
SOURCES.md. Each one must be either accepted or refused with a reason, and the real
GCN/SVOM/LVK notices must all be accepted.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path

import pytest

from burstbus.voevent import CODES, Examined, VOEventRejected, examine, summarize, warm_up

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "voevents"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"{CORPUS} not present")

EXPECTED_REJECTIONS = {
    "odd_no_namespace_packet.xml": "version",
    "odd_gcn_kill_socket_v1.1_no_wherewhen.xml": "ivorn",
}
MISSION_AUTHORITIES = ("nasa.gsfc.gcn", "org.svom", "gwnet", "lvk.internal")


@pytest.fixture(scope="module")
def results() -> dict[Path, Examined | VOEventRejected]:
    warm_up()
    out: dict[Path, Examined | VOEventRejected] = {}
    for path in sorted(CORPUS.rglob("*.xml")):
        raw = path.read_bytes()
        try:
            out[path] = examine(raw)
        except VOEventRejected as exc:
            out[path] = exc
    return out


def test_every_packet_is_accepted_or_refused_with_a_reason(results) -> None:
    assert len(results) > 2000
    reasons: collections.Counter[tuple[str, str]] = collections.Counter()
    tolerated: collections.Counter[str] = collections.Counter()
    accepted = 0
    for outcome in results.values():
        if isinstance(outcome, VOEventRejected):
            assert outcome.code in CODES and outcome.reason
            reasons[(outcome.code, outcome.reason)] += 1
        else:
            accepted += 1
            tolerated.update(outcome.tolerated)
            json.dumps(outcome.summary, allow_nan=False)
    print(f"\ncorpus: {len(results)} packets, {accepted} accepted, {sum(reasons.values())} refused")
    for (code, reason), n in reasons.most_common():
        print(f"  {n:5d} refused [{code}] {reason}")
    for note, n in tolerated.most_common():
        print(f"  {n:5d} accepted with tolerated deviation: {note}")


def test_expected_rejections(results) -> None:
    by_name = {p.name: r for p, r in results.items() if p.parent == CORPUS}
    for name, code in EXPECTED_REJECTIONS.items():
        outcome = by_name[name]
        assert isinstance(outcome, VOEventRejected), name
        assert outcome.code == code, (name, outcome.reason)
    assert "found: none" in by_name["odd_no_namespace_packet.xml"].reason


def test_all_gcn_svom_lvk_notices_are_accepted(results) -> None:
    refused = []
    versions: collections.Counter[str] = collections.Counter()
    for path, outcome in results.items():
        raw = path.read_bytes()
        if not any(f"ivo://{a}/".encode() in raw[:2000] for a in MISSION_AUTHORITIES):
            continue
        if path.name in EXPECTED_REJECTIONS:
            continue
        if isinstance(outcome, VOEventRejected):
            refused.append(f"{path.relative_to(CORPUS)}: {outcome.reason}")
        else:
            versions[outcome.summary["version"]] += 1
    assert refused == []
    assert versions["1.1"] >= 30 and versions["2.0"] > 1500


def test_every_1_1_packet_with_a_local_id_is_accepted(results) -> None:
    for path, outcome in results.items():
        if b"http://www.ivoa.net/xml/VOEvent/v1.1" in path.read_bytes()[:1000]:
            if path.name in EXPECTED_REJECTIONS:
                continue
            assert isinstance(outcome, Examined), (path, outcome)


def test_positions_agree_with_voevent_parse(results) -> None:
    """Within 1 arcsec of voevent-parse's get_event_position (FK5 and ICRS systems)."""
    import astropy.units as u
    import voeventparse as vp
    from astropy.coordinates import SkyCoord

    compared = 0
    for path, outcome in results.items():
        if not isinstance(outcome, Examined) or outcome.summary["position"] is None:
            continue
        if outcome.summary["version"] != "2.0":  # voevent-parse reads 2.0 only
            continue
        pos = outcome.summary["position"]
        theirs = vp.get_event_position(vp.loads(path.read_bytes()))
        if theirs.units != "deg":
            continue
        ours = SkyCoord(pos["ra"] * u.deg, pos["dec"] * u.deg)
        sep = ours.separation(SkyCoord(theirs.ra * u.deg, theirs.dec * u.deg)).arcsec
        assert sep < 1.0, (path.name, pos, theirs)
        if theirs.err > 0 and pos["err"] is not None:
            assert abs(pos["err"] - theirs.err) < 1e-9, path.name
        compared += 1
    assert compared > 1000


def test_known_packets(results) -> None:
    by_name = {p.name: r for p, r in results.items() if p.parent == CORPUS}

    s = by_name["swift_bat_grb_pos_v2.0.xml"].summary
    assert s["params"]["TrigID"] == "532871"
    assert (s["instrument"], s["mission"]) == ("Swift/BAT", "SWIFT")
    assert s["time"] == "2012-09-07T00:24:23.080000Z"
    assert abs(s["position"]["ra"] - 74.7412) < 1e-4 and s["position"]["err"] == 0.05

    s = by_name["swift_xrt_pos_v1.1_followup.xml"].summary
    assert s["version"] == "1.1"
    assert s["citations"] == [
        {"ivorn": "ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_644259-771", "type": "followup"}
    ]
    assert s["citation_description"] == "This is the XRT Position for the original BAT trigger."
    assert abs(s["position"]["dec"] - -53.3930) < 1e-4

    s = by_name["fermi_gbm_flt_pos_v1.1.xml"].summary
    assert s["position"]["system"] == "FK5-UTC-GEO" and s["position"]["err"] == 17.4333

    s = by_name["svom_mxt_initial.xml"].summary
    assert s["params"]["Burst_Id"] == "sb26022501"
    assert s["instrument"] == "SVOM/MXT" and s["mission"] == "SVOM"
    assert s["position"] == {
        "ra": 204.8665,
        "dec": 45.1204,
        "err": 0.0643,
        "time": "2026-02-25T09:36:39.104000Z",
        "system": "UTC-ICRS-GEO",
        "kind": None,
    }
    assert len(s["citations"]) == 3

    s = by_name["svom_retraction_multi_cite.xml"].summary
    assert [c["type"] for c in s["citations"]] == ["retraction"] * 3

    s = by_name["lvc_s190814bv_update_supersedes.xml"].summary
    assert s["params"]["GraceID"] == "S190814bv" and s["params"]["AlertType"] == "Update"
    assert s["position"] is None and s["time"] == "2019-08-14T21:10:39.012957Z"
    assert [c["type"] for c in s["citations"]] == ["supersedes"] * 4

    s = by_name["antares_alert.xml"].summary
    assert s["citations"] == []  # its only EventIVORN is empty
    assert by_name["antares_alert.xml"].tolerated

    assert by_name["fermi_gbm_alert.xml"].summary["position"] is None  # 0/0 placeholder
    assert by_name["ipn_raw.xml"].summary["position"] is None  # -1/-1, "unavailable"
    assert by_name["swift_point_dir_role_utility.xml"].summary["position"]["kind"] == (
        "pointing_direction"
    )
    gaia = by_name["gaia_alert_gaia16aac.xml"].summary
    assert gaia["position"]["system"] == "TDB-ICRS-BARY"
    assert gaia["time"] is not None and gaia["time"] != gaia["authored"]


def test_burst_identifiers_are_always_found(results) -> None:
    for path, outcome in results.items():
        if not isinstance(outcome, Examined):
            continue
        s = outcome.summary
        if s["stream"] == "org.svom/fsc":
            assert s["params"].get("Burst_Id", "").startswith("sb"), path.name
            assert s["instrument"].startswith("SVOM"), path.name
        if s["stream"] in ("gwnet/LVC", "gwnet/gcn_sender"):
            assert s["params"].get("GraceID"), path.name
        if s["stream"] == "nasa.gsfc.gcn/SWIFT" and s["local_id"].startswith("BAT_GRB_Pos"):
            assert s["params"].get("TrigID"), path.name


def test_timing(results) -> None:
    """Not an assertion: how long examine and summarize take per packet over the corpus."""
    raws = [p.read_bytes() for p in results]
    roots = [r.root for r in results.values() if isinstance(r, Examined)]

    def per_packet(fn, items) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for item in items:
                try:
                    fn(item)
                except VOEventRejected:
                    pass
            best = min(best, (time.perf_counter() - start) / len(items))
        return best * 1e6

    samples = []
    for root in roots:
        start = time.perf_counter()
        summarize(root)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    print(
        f"\nexamine {per_packet(examine, raws):.0f} us/packet; "
        f"summarize {per_packet(summarize, roots):.0f} us/packet "
        f"(p50 {samples[len(samples) // 2]:.0f}, p99 {samples[int(len(samples) * 0.99)]:.0f}, "
        f"max {samples[-1]:.0f} us) over {len(raws)} packets"
    )
