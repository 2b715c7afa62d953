"""Small, valid VOEvent 2.0 packets built in the tests, so the suite never needs shared/."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

SHARED_VOEVENTS = Path(__file__).resolve().parents[2] / "shared" / "voevents"


def voevent(
    ivorn: str = "ivo://test.example/burstbus#notice-1",
    *,
    role: str = "observation",
    params: dict[str, str] | None = None,
    ra: float | None = 123.456,
    dec: float | None = -12.5,
    err: float | None = 0.05,
    time: str = "2026-11-20T03:04:05.67",
    authored: str = "2026-11-20T03:05:00",
    cites: list[tuple[str, str]] | None = None,
    description: str = "burstbus test packet",
) -> bytes:
    """A schema-valid VOEvent 2.0 packet with the given identity, params, position and citations."""
    params_xml = "".join(
        f"<Param name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in (params or {}).items()
    )
    position = ""
    if ra is not None and dec is not None:
        error = f"<Error2Radius>{err}</Error2Radius>" if err is not None else ""
        position = (
            f'<Position2D unit="deg"><Name1>RA</Name1><Name2>Dec</Name2>'
            f"<Value2><C1>{ra}</C1><C2>{dec}</C2></Value2>{error}</Position2D>"
        )
    citations = ""
    if cites:
        citations = "<Citations>" + "".join(
            f'<EventIVORN cite="{kind}">{target}</EventIVORN>' for target, kind in cites
        ) + "<Description>follow-up</Description></Citations>"
    text = f"""<?xml version='1.0' encoding='UTF-8'?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ivorn={quoteattr(ivorn)} role="{role}" version="2.0">
  <Who>
    <AuthorIVORN>ivo://test.example/burstbus</AuthorIVORN>
    <Date>{authored}</Date>
  </Who>
  <What>{params_xml}</What>
  <WhereWhen>
    <ObsDataLocation>
      <ObservatoryLocation id="GEOLUN"/>
      <ObservationLocation>
        <AstroCoordSystem id="UTC-FK5-GEO"/>
        <AstroCoords coord_system_id="UTC-FK5-GEO">
          <Time unit="s"><TimeInstant><ISOTime>{time}</ISOTime></TimeInstant></Time>
          {position}
        </AstroCoords>
      </ObservationLocation>
    </ObsDataLocation>
  </WhereWhen>
  {citations}
  <Description>{description}</Description>
</voe:VOEvent>
"""
    return text.encode("utf-8")
