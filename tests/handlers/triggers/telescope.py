"""Packets a partner telescope sends back after a trigger (own fixtures, shaped like theirs):
role ``utility``, the step in a ``Status`` Param, the trigger packet cited, and for an upload
the data's location in a Param or in ``How/Reference``."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr


def telescope_reply(ivorn: str, trigger_ivorn: str, status: str, *, data_location: str | None = None,
                    reference: str | None = None, telescope: str = "COLIBRI", param: str = "Status") -> bytes:
    location = f'\n    <Param name="Data_Location" value={quoteattr(data_location)} ucd="meta.ref.url"/>' if data_location else ""
    how = f"\n  <How><Reference uri={quoteattr(reference)}/></How>" if reference else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="2.0" role="utility" ivorn={quoteattr(ivorn)}>
  <Who>
    <AuthorIVORN>ivo://colibri.example/followup</AuthorIVORN>
    <Date>2026-11-20T03:30:00</Date>
  </Who>
  <What>
    <Param name="Telescope" value={quoteattr(telescope)} ucd="meta.id;instr.tel"/>
    <Param name={quoteattr(param)} value={quoteattr(status)} ucd="meta.code.status"/>{location}
  </What>{how}
  <Citations>
    <EventIVORN cite="followup">{escape(trigger_ivorn)}</EventIVORN>
    <Description>Reply to a follow-up request</Description>
  </Citations>
</voe:VOEvent>
""".encode()
