"""``GET /api/provenance/{id}``: what made a product, a run or a notice, back to the alert
packet, as W3C PROV-JSON (``burstbus.handlers.orchestrator.provenance``; the same document as
``burstbus provenance ID``).

A read credential is needed (as for the log): the chain names the people who asked for a run."""

from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from burstbus.bridges.http.access import Access
from burstbus.bridges.http.errors import ApiError, Unavailable, json_response
from burstbus.bridges.http.spec import Param, Route
from burstbus.handlers.orchestrator import provenance
from burstbus.store.base import EventLog, LogError


class _NotFound(ApiError):
    status = 404
    description = "Not found"


class Provenance:
    def __init__(self, log: EventLog, access: Access):
        self.log = log
        self.access = access

    def routes(self) -> list[Route]:
        return [Route("GET", "/api/provenance/{id:.+}", self.get, "Provenance (W3C PROV-JSON)", "orchestrator",
                      description=("The chain back to the alert packet: a product ← the run that made it (pipeline, "
                                   "version, parameters, who or what asked) ← its inputs ← … ← the alert. ID: a product's "
                                   "or data's event id, a run's request id, or a notice's event id or (URL-encoded) IVORN."),
                      params=(Param("id", "the event id, or the notice's URL-encoded IVORN", where="path"),),
                      security="read", schema={"type": "object"},
                      responses={200: "the PROV-JSON document", 404: "no such product, run or notice",
                                 401: "a read credential is needed", 403: "no read token is configured"})]

    async def get(self, request: web.Request) -> web.Response:
        self.access.require(request, "provenance")
        wanted = unquote(request.match_info["id"])
        try:
            document = await provenance.load(self.log, wanted)
        except provenance.NotFound as exc:
            raise _NotFound(str(exc)) from None
        except LogError as exc:
            raise Unavailable(f"the event log cannot be read now ({exc})") from None
        return json_response(document)
