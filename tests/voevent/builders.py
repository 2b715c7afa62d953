"""Small hand-written VOEvent packets for the tests (no dependency on /work/shared)."""

from __future__ import annotations

from collections.abc import Iterable

V2_0_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"
V1_1_NS = "http://www.ivoa.net/xml/VOEvent/v1.1"
STC_NS = "http://www.ivoa.net/xml/STC/stc-v1.30.xsd"


def _position_xml(ra: float | str, dec: float | str, err: float | str | None, unit: str) -> str:
    err_xml = f"\n              <Error2Radius>{err}</Error2Radius>" if err is not None else ""
    return f"""
            <Position2D unit="{unit}">
              <Name1>RA</Name1>
              <Name2>Dec</Name2>
              <Value2>
                <C1>{ra}</C1>
                <C2>{dec}</C2>
              </Value2>{err_xml}
            </Position2D>"""


def packet(
    *,
    version: str = "2.0",
    ivorn: str | None = "ivo://test.burstbus/unit#pkt-1",
    role: str | None = "observation",
    author_ivorn: str = "ivo://test.burstbus/author",
    who_date: str | None = "2020-06-01T12:00:00",
    params: Iterable[tuple[str, str]] = (("Packet_Type", "61"), ("TrigID", "123456")),
    groups: Iterable[tuple[str, Iterable[tuple[str, str]]]] = (),
    what_extra: str = "",
    system: str | None = "UTC-FK5-GEO",
    iso_time: str | None = "2020-06-01T11:59:30.25",
    ra: float | str | None = 123.456,
    dec: float | str | None = -45.678,
    err: float | str | None = 0.05,
    unit: str = "deg",
    where_description: str | None = None,
    wherewhen: bool = True,
    citations: Iterable[tuple[str, str]] = (),
    citation_description: str | None = None,
    root_extra_xml: str = "",
    root_attrs: str = "",
) -> bytes:
    """Build a VOEvent packet as bytes; 2.0 by default, or 1.1 with STC-namespaced WhereWhen."""
    ns = V2_0_NS if version == "2.0" else V1_1_NS
    attrs = [f'xmlns:voe="{ns}"', 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"']
    if version == "1.1":
        attrs.append('xmlns:xlink="http://www.w3.org/1999/xlink"')
    if ivorn is not None:
        attrs.append(f'ivorn="{ivorn}"')
    if role is not None:
        attrs.append(f'role="{role}"')
    attrs.append(f'version="{version}"')
    if root_attrs:
        attrs.append(root_attrs)
    head = "<voe:VOEvent " + " ".join(attrs) + ">"

    date_xml = f"\n    <Date>{who_date}</Date>" if who_date is not None else ""
    who = f"""
  <Who>
    <AuthorIVORN>{author_ivorn}</AuthorIVORN>{date_xml}
  </Who>"""

    param_xml = "".join(f'\n    <Param name="{n}" value="{v}"/>' for n, v in params)
    for gname, gparams in groups:
        inner = "".join(f'\n      <Param name="{n}" value="{v}"/>' for n, v in gparams)
        param_xml += f'\n    <Group name="{gname}">{inner}\n    </Group>'
    what = f"\n  <What>{param_xml}{what_extra}\n  </What>"

    ww = ""
    if wherewhen:
        time_xml = (
            f"""
            <Time unit="s">
              <TimeInstant>
                <ISOTime>{iso_time}</ISOTime>
              </TimeInstant>
            </Time>"""
            if iso_time is not None
            else ""
        )
        pos_xml = _position_xml(ra, dec, err, unit) if ra is not None else ""
        if version == "2.0":
            odl_open = "<ObsDataLocation>"
            obs_loc = '<ObservatoryLocation id="GEOLUN"/>'
            sys_xml = f'<AstroCoordSystem id="{system}"/>'
        else:
            odl_open = f'<ObsDataLocation xmlns="{STC_NS}">'
            obs_loc = (
                '<ObservatoryLocation xlink:href="ivo://STClib/Observatories#GEOLUN/" '
                'xlink:type="simple" id="GEOLUN"/>'
            )
            sys_xml = (
                f'<AstroCoordSystem xlink:href="ivo://STClib/CoordSys#{system}/" '
                f'xlink:type="simple" id="{system}"/>'
            )
        desc = f"\n    <Description>{where_description}</Description>" if where_description else ""
        ww = f"""
  <WhereWhen>
    {odl_open}
      {obs_loc}
      <ObservationLocation>
        {sys_xml}
        <AstroCoords coord_system_id="{system}">{time_xml}{pos_xml}
        </AstroCoords>
      </ObservationLocation>
    </ObsDataLocation>{desc}
  </WhereWhen>"""

    how = "\n  <How>\n    <Description>unit-test instrument</Description>\n  </How>"
    cites = ""
    citations = list(citations)
    if citations or citation_description:
        items = "".join(f'\n    <EventIVORN cite="{c}">{i}</EventIVORN>' for i, c in citations)
        cdesc = (
            f"\n    <Description>{citation_description}</Description>"
            if citation_description
            else ""
        )
        cites = f"\n  <Citations>{items}{cdesc}\n  </Citations>"

    body = f"{who}{what}{ww}{how}{cites}{root_extra_xml}\n</voe:VOEvent>\n"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + head + body).encode("utf-8")


def line_of(raw: bytes, needle: str) -> int:
    """1-based line number of the first occurrence of ``needle`` in ``raw``."""
    index = raw.index(needle.encode())
    return raw[:index].count(b"\n") + 1
