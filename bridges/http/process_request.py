"""``POST /api/processes/request``: Request Process over the API, with the write token.

The same request as the bot's ``process PIPELINE BURST [key=value …]``, judged by the same
rules (``burstbus.handlers.orchestrator.asking``) and recorded the same way: a
``process.asked`` event, which the orchestrator makes a run of its own. The shared write token
stands for an operator (actor ``http:<address>``): it may ask for any pipeline (role admin); a
signed-in person or a person's API token
asks with the role ``[acl]`` gives them, recorded as ``web:<jid>`` (the form at
``/processes/request`` uses the same :meth:`ProcessRequests.record`). The body is JSON:
``{"pipeline": "ecl-loc", "burst_id": "sb26112001", "obs_id": null, "parameters": {"threshold": "5"}}``.

=====  ==========================================================
202    recorded: ``asked_id`` (the event), ``run_id`` (the run it will be), ``seq``
422    refused: an unknown pipeline or burst, a bad parameter (nothing recorded)
503    the orchestrator is not running here, or the log cannot take it now
=====  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from burstbus.bridges.http.access import Access, Writer
from burstbus.bridges.http.errors import ApiError, Unavailable, json_response
from burstbus.bridges.http.permissions import Action
from burstbus.bridges.http.spec import Route
from burstbus.handlers.orchestrator import asking
from burstbus.handlers.orchestrator.config import PipelinesSection
from burstbus.store.base import EventLog, LogError
from burstbus.store.read import bursts as read_burst
from burstbus.store.reader import ProjectionReader
from burstbus.untrusted import UntrustedJson, parse_json

MAX_BODY = 65536


class _Refused(ApiError):
    status = 422
    description = "Request refused"


class ProcessRequests:
    def __init__(self, log: EventLog, reader: ProjectionReader, token: str | None, access: Access | None,
                 pipelines: PipelinesSection | None, orchestrator: Callable[[], Any] | None):
        self.log = log
        self.reader = reader
        self.token = token
        self.access = access
        self.pipelines = pipelines or PipelinesSection()
        self.orchestrator = orchestrator

    def routes(self) -> list[Route]:
        body = {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
            "pipeline": {"type": "string"}, "burst_id": {"type": "string"}, "obs_id": {"type": ["string", "null"]},
            "parameters": {"type": "object", "additionalProperties": {"type": "string"}}},
            "required": ["pipeline", "burst_id"]}}}}
        schema = {"type": "object", "properties": {"asked_id": {"type": "string"}, "run_id": {"type": "string"},
                                                   "seq": {"type": "integer"}, "text": {"type": "string"}}}
        return [Route("POST", "/api/processes/request", self.post, "Request Process", "orchestrator",
                      description=("Ask for a run of a pipeline on a burst, with parameters that override its "
                                   "defaults: recorded as process.asked; the orchestrator starts the run once its "
                                   "inputs are there (the processes table shows it)."),
                      request_body=body, security="write", schema=schema, allow_head=False,
                      responses={202: "recorded", 401: "missing or wrong token", 403: "no write token is configured",
                                 422: "refused: unknown pipeline or burst, bad parameter",
                                 429: "too many wrong tokens from this address", 503: "the orchestrator is off"})]

    async def post(self, request: web.Request) -> web.Response:
        access = self.access if self.access is not None else Access(())
        writer = access.writer(request, Action.REQUEST_PROCESS, "requesting processes over HTTP", self.token)
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise _Refused(f"the body is over {MAX_BODY} bytes")
        try:
            value = parse_json(raw)  # depth and number limits: deep nesting is a refusal, not a RecursionError
        except UntrustedJson as exc:
            raise _Refused(str(exc)) from None
        return json_response(await self.record(writer, value), status=202)

    async def record(self, writer: Writer, value: Any) -> dict[str, Any]:
        """Judge and record one request (the API's JSON, or the web form's fields): the answer's
        body, or :class:`_Refused` / :class:`Unavailable`."""
        if not isinstance(value, dict) or not isinstance(value.get("pipeline"), str) or not isinstance(value.get("burst_id"), str):
            raise _Refused("expected a JSON object with 'pipeline' and 'burst_id' (strings)")
        parameters = value.get("parameters") or {}
        obs_id = value.get("obs_id")
        if not isinstance(parameters, dict) or (obs_id is not None and not isinstance(obs_id, str)):
            raise _Refused("'parameters' must be an object of strings and 'obs_id' a string")
        typed = value["burst_id"].strip()

        def known(conn: Any) -> str | None:
            return read_burst.resolve_burst_id(conn, typed) or (typed if read_burst.processes(conn, typed) else None)

        burst_id = await self.reader.run(known)
        if burst_id is None:
            raise _Refused(f"no burst {typed[:64]!r} is known here")
        by = writer.actor if writer.person is not None else f"{writer.actor} (write token)"
        try:
            asked = asking.ask(self.pipelines, value["pipeline"], burst_id, role=writer.role, actor=writer.actor,
                               requested_by=by, via=writer.via, parameters=parameters, obs_id=obs_id or None)
        except asking.Refused as refused:
            raise _Refused(refused.text, reason=refused.reason) from None
        orchestrator = self.orchestrator() if self.orchestrator is not None else None
        if orchestrator is None:
            raise Unavailable("the orchestrator is not running here: nothing would start the run")
        try:
            await orchestrator.adopt(burst_id)
            [where] = await self.log.append([asked.event])
        except LogError as exc:
            raise Unavailable(f"the event log cannot take it now ({exc}); nothing was stored") from None
        return {"asked_id": asked.event.id, "run_id": asked.run_id, "seq": where.seq, "text": asking.describe(asked)}
