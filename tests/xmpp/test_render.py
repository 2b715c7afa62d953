"""What goes where and how it reads (no server): selection rules, templates, the [xmpp] section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from burstbus.bridges.xmpp.config import XmppSection, check_xmpp
from burstbus.bridges.xmpp.notify import Selection, plan
from burstbus.bridges.xmpp.render import Templates, load_templates
from burstbus.config import ConfigError, _build
from burstbus.events import RecordedEvent
from burstbus.notices import notice_view
from burstbus.payload import xml_fields
from tests.packets import voevent


def section(**values: Any) -> XmppSection:
    base: dict[str, Any] = {"enabled": True, "jid": "burstbus@fsc.example", "password": "secret"}
    built = _build(XmppSection, {**base, **values}, "xmpp.")
    check_xmpp(built)
    return built


def record(role: str = "observation", mission: str = "SVOM", packet_type: str = "202", seq: int = 7) -> RecordedEvent:
    raw = voevent(f"ivo://org.svom/fsc#n{seq}", role=role, params={"Packet_Type": packet_type})
    data = {
        "ivorn": f"ivo://org.svom/fsc#n{seq}", "role": role, "mission": mission, "instrument": "SVOM/ECLAIRs",
        "time": "2026-11-20T03:04:05.670000Z", "position": {"ra": 123.456, "dec": -12.5, "err": 0.05},
        "params": {"Packet_Type": packet_type}, "citations": [], **xml_fields(raw),
    }
    return RecordedEvent(seq, f"event-{seq}", "voevent.accepted", "org.svom/fsc", "vtp:127.0.0.1", "t", "t", data, "0", "0")


def test_pages_and_forwards_follow_roles_missions_and_xpath() -> None:
    s = section(
        rooms=[{"jid": "ba@conference.fsc.example"}], on_duty=["alice@fsc.example"], page_missions=["svom"],
        page_xpath="//Param[@name='Packet_Type' and @value='202']",
        forward=[{"jid": "colibri@t.example", "xpath": "//Param[@name='Packet_Type' and @value='202']"},
                 {"jid": "all@t.example", "roles": ["observation", "test"]}],
    )
    selection, templates = Selection(s), Templates()

    def where(r: RecordedEvent) -> list[tuple[str, str]]:
        view = notice_view(r.data, burst_id="sb26112001", link_base="https://fsc.example/bb", seq=r.seq, event_id=r.id)
        return [(m.type, m.to) for m in plan(r, view, selection, templates)]

    assert where(record()) == [
        ("groupchat", "ba@conference.fsc.example"), ("chat", "alice@fsc.example"),
        ("chat", "colibri@t.example"), ("chat", "all@t.example"),
    ]
    assert where(record(packet_type="203")) == [("groupchat", "ba@conference.fsc.example"), ("chat", "all@t.example")]
    assert where(record(mission="SWIFT")) == [("groupchat", "ba@conference.fsc.example"), ("chat", "colibri@t.example"), ("chat", "all@t.example")]
    assert where(record(role="test")) == [("chat", "all@t.example")]
    view = notice_view(record().data, burst_id="sb26112001", link_base="https://fsc.example/bb", seq=7, event_id="event-7")
    [forward] = [m for m in plan(record(), view, Selection(section(forward=[{"jid": "t@t.example"}])), templates)]
    assert forward.voevent == record().data["xml"].encode() and forward.id == "event-7"


def test_templates_read_well_and_an_operator_may_override_them(tmp_path: Path) -> None:
    view = notice_view(record().data, burst_id="sb26112001", link_base="https://fsc.example/bb", seq=7, event_id="e")
    text = Templates().render("room", view)
    assert text.splitlines() == [
        "sb26112001 · SVOM/ECLAIRs (202)",
        "RA 08h13m49.44s Dec -12°30′00.0″ (123.4560 -12.5000) ± 3.0′ · 2026-11-20 03:04:05 UTC",
        "https://fsc.example/bb/bursts/sb26112001",
    ]
    no_burst = notice_view(record().data, burst_id=None, link_base="https://fsc.example/bb", seq=7, event_id="e")
    assert "https://fsc.example/bb/apiv1/packet/xml/ivo%3A%2F%2Forg.svom%2Ffsc%23n7" in Templates().render("page", no_burst)
    (tmp_path / "room.j2").write_text("GRB {{ n.burst_id }} by {{ n.instrument }}\n")
    custom = load_templates(tmp_path)
    assert custom.render("room", view) == "GRB sb26112001 by SVOM/ECLAIRs"
    assert custom.render("page", view).startswith("New notice: sb26112001")  # not overridden
    (tmp_path / "page.j2").write_text("{{ n.no_such_field }}")
    assert Templates(tmp_path).render("page", view).startswith("New notice:")  # falls back, never silent
    (tmp_path / "forward.j2").write_text("{% if %}")
    with pytest.raises(ConfigError, match="xmpp.templates_dir"):
        load_templates(tmp_path)


def test_the_section_refuses_what_would_fail_at_3am(tmp_path: Path) -> None:
    assert XmppSection().enabled is False
    with pytest.raises(ConfigError, match="xmpp.jid"):
        section(jid="")
    with pytest.raises(ConfigError, match="xmpp.jid"):
        section(jid="burstbus@fsc.example/res")
    with pytest.raises(ConfigError, match="xmpp.on_duty"):
        section(on_duty=["alice"])
    with pytest.raises(ConfigError, match=r"xmpp.on_duty\[0\]"):
        section(rooms=[{"jid": "ba@conference.fsc.example"}], on_duty=["ba@conference.fsc.example"])
    with pytest.raises(ConfigError, match="xmpp.ca_file"):
        section(ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"xmpp.forward\[0\].xpath"):
        section(forward=[{"jid": "t@t.example", "xpath": "//["}])
    with pytest.raises(ConfigError, match="xmpp.page_roles"):
        section(page_roles=["observations"])
    with pytest.raises(ConfigError, match="xmpp.resource"):
        section(resource="has space")
    with pytest.raises(ConfigError, match="xmpp.password"):
        section(password="env:BURSTBUS_TEST_NO_SUCH_VARIABLE")
    with pytest.raises(ConfigError, match="unknown key"):
        section(rooms=[{"jid": "ba@conference.fsc.example", "nik": "x"}])
