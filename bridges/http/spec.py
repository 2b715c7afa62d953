"""One route table for the JSON API: what is served, how its query string is read, and the
OpenAPI 3.1 description (``GET /api/openapi.json``) — all from the same :class:`Route` list,
so the description cannot drift from what the server answers.

A :class:`Param` both documents a parameter and parses it: :func:`parse_query` refuses an
unknown key or a bad value with a 400 that names the key, so every endpoint reads its query
string the same way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from burstbus.bridges.http.errors import InvalidQueryString, LimitMaxExceeded
from burstbus.events import normalise_time

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Longest text value accepted in a query-string filter (ids, names, event types).
MAX_TEXT = 500
#: Most values one multi-valued filter may carry (repeats and commas together).
MAX_VALUES = 100
_INTEGER = re.compile(r"\s*\+?([0-9]+)\s*")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Param:
    """A query-string (or path/header) parameter: its OpenAPI description and its parser.

    ``kind``: ``text``, ``integer``, ``boolean``, ``time`` (ISO-8601, normalised to the log's
    fixed-width UTC), ``date`` (``YYYY-MM-DD``). ``multi``: repeat the key or separate values
    with commas; parsed as a tuple. ``maximum`` on an integer is a 413 when exceeded if
    ``too_large_413`` (``limit``, as ``/apiv1`` answers), else a 400.
    """

    name: str
    description: str
    kind: str = "text"
    where: str = "query"
    multi: bool = False
    enum: tuple[str, ...] = ()
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    too_large_413: bool = False
    required: bool = False
    example: Any = None

    def schema(self) -> dict[str, Any]:
        base: dict[str, Any]
        if self.kind == "integer":
            base = {"type": "integer"}
            if self.minimum is not None:
                base["minimum"] = self.minimum
            if self.maximum is not None:
                base["maximum"] = self.maximum
        elif self.kind == "boolean":
            base = {"type": "boolean"}
        elif self.kind == "number":
            base = {"type": "number"}
        elif self.kind == "time":
            base = {"type": "string", "format": "date-time"}
        elif self.kind == "date":
            base = {"type": "string", "format": "date"}
        else:
            base = {"type": "string"}
            if self.enum:
                base["enum"] = list(self.enum)
        if self.default is not None and not self.multi:
            base["default"] = self.default
        if self.multi:
            return {"type": "array", "items": base, "maxItems": MAX_VALUES}
        return base

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "in": self.where,
            "description": self.description,
            "required": self.required or self.where == "path",
            "schema": self.schema(),
        }
        if self.multi and self.where == "query":
            # Repeated keys (?a=1&a=2); commas inside one value are split as well.
            out["style"] = "form"
            out["explode"] = True
        if self.example is not None:
            out["example"] = self.example
        return out

    # -- parsing -----------------------------------------------------------------------

    def _one(self, text: str) -> Any:
        name = self.name
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            shown = text.encode("utf-8", "replace").decode("utf-8")
            raise InvalidQueryString("the text is not valid UTF-8 once percent-decoded", name, shown) from None
        if "\x00" in text:
            raise InvalidQueryString("NUL characters are not allowed", name, text.replace("\x00", "\\0"))
        if self.kind == "integer":
            return self._integer(text)
        if self.kind == "boolean":
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise InvalidQueryString("must be true or false", name, text)
        if self.kind == "time":
            try:
                return normalise_time(text)
            except (ValueError, OverflowError):
                raise InvalidQueryString(
                    "must be an ISO-8601 time, e.g. 2026-11-20T03:04:05Z", name, text
                ) from None
        if self.kind == "date":
            value = text.strip()
            if not _DATE.fullmatch(value):
                raise InvalidQueryString("must be a date YYYY-MM-DD", name, text)
            try:
                normalise_time(value + "T00:00:00Z")
            except ValueError:
                raise InvalidQueryString("must be a valid date YYYY-MM-DD", name, text) from None
            return value
        if len(text) > MAX_TEXT:
            raise InvalidQueryString(f"longer than {MAX_TEXT} characters", name, text)
        if self.enum and text not in self.enum:
            raise InvalidQueryString(f"must be one of {', '.join(self.enum)}", name, text)
        return text

    def _integer(self, text: str) -> int:
        name = self.name
        match = _INTEGER.fullmatch(text)
        if match is None:
            if _INTEGER.fullmatch(text.strip().removeprefix("-")):
                raise InvalidQueryString("must not be negative", name, text)
            raise InvalidQueryString("must be a whole number", name, text)
        digits = match.group(1).lstrip("0") or "0"
        too_large = self.maximum is not None and (
            len(digits) > len(str(self.maximum)) or int(digits) > self.maximum
        )
        if too_large:
            assert self.maximum is not None
            if self.too_large_413:
                raise LimitMaxExceeded(text.strip()[:40], self.maximum)
            raise InvalidQueryString(f"the largest value is {self.maximum}", name, text)
        if len(digits) > 19:  # beyond SQLite's 64-bit integers and no maximum given
            raise InvalidQueryString("too large", name, text)
        value = int(digits)
        if self.minimum is not None and value < self.minimum:
            raise InvalidQueryString(f"the smallest value is {self.minimum}", name, text)
        return value

    def parse(self, texts: Sequence[str]) -> Any:
        if not self.multi:
            return self._one(texts[0])
        values: list[Any] = []
        for text in texts:
            for part in text.split(","):
                if part.strip():
                    values.append(self._one(part.strip()))
        if len(values) > MAX_VALUES:
            raise InvalidQueryString(f"at most {MAX_VALUES} values", self.name, ",".join(texts))
        return tuple(dict.fromkeys(values))


def limit_param(default: int, maximum: int) -> Param:
    return Param("limit", f"rows per page (default {default}, at most {maximum}; more is a 413)",
                 kind="integer", default=default, minimum=0, maximum=maximum, too_large_413=True)  # fmt: skip


OFFSET = Param("offset", "rows to skip (paging)", kind="integer", default=0, minimum=0, maximum=2**62)


def parse_query(request: web.Request, params: Iterable[Param]) -> dict[str, Any]:
    """The request's query string read through ``params``: unknown keys and bad values are a
    400 naming the key; absent keys get their default (a multi key: an empty tuple)."""
    known = {p.name: p for p in params if p.where == "query"}
    query = request.query
    for key in query:
        if key not in known:
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                key = key.encode("utf-8", "replace").decode("utf-8")
            shown = key if len(key) <= 100 else key[:100] + "…"
            raise InvalidQueryString(
                f"unknown parameter {shown!r} (known: {', '.join(sorted(known)) or 'none'})", shown
            )
    values: dict[str, Any] = {}
    for name, param in known.items():
        texts = [t for t in query.getall(name, []) if t != ""]
        if not texts:
            values[name] = () if param.multi else param.default
            continue
        values[name] = param.parse(texts)
    return values


@dataclass(frozen=True)
class Route:
    """One endpoint: served by ``handler``, described in the OpenAPI document.

    ``path`` is the aiohttp pattern under the base path (``/api/bursts/{burst_id}``);
    ``{name:regex}`` patterns are written ``{name}`` in the description.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    description: str = ""
    params: tuple[Param, ...] = ()
    responses: Mapping[int, str] = field(default_factory=dict)
    #: JSON schema of the 200/201 body (a ``$ref`` into ``components.schemas``, or inline).
    schema: Mapping[str, Any] | None = None
    content_type: str = "application/json"
    request_body: Mapping[str, Any] | None = None
    #: Who may call it: ``""`` anyone; ``"write"`` the bearer token only; ``"read"`` a read
    #: credential (bearer token or sign-in cookie) unless the server opens reads
    #: (``public_read``); ``"partial"`` anyone, with more in the answer given a read credential.
    security: str = ""
    allow_head: bool = True


_PATTERN = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def openapi_path(path: str) -> str:
    return _PATTERN.sub(r"{\1}", path)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "description", "message"],
            "properties": {
                "code": {"type": "integer", "description": "the HTTP status"},
                "description": {"type": "string", "description": "the kind of error"},
                "message": {"type": "string", "description": "what was wrong, for a person"},
                "parameter": {"type": "string", "description": "the query-string key to blame, if any"},
            },
        }
    },
}

_DEFAULT_RESPONSES = {400: "a parameter is invalid (the message names it)", 503: "the read models cannot be read now"}


#: The read credentials: the bearer token (read or API token) or the sign-in cookie.
_READ: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "the API token ([http] token; writes and reads) or the read token ([http] "
                              "read_token; reads only)"},
    "session": {"type": "apiKey", "in": "cookie", "name": "burstbus_session",
                "description": "set by POST /signin (the web pages' sign-in form); reads only"},
}  # fmt: skip


def _security(kind: str, open_reads: bool) -> list[dict[str, list[str]]] | None:
    if kind == "write":
        return [{"bearer": []}]
    if kind == "read" and not open_reads:
        return list(_READ)
    if kind == "partial" and not open_reads:
        return [{}, *_READ]  # ``{}``: anonymous callers too (they get the public part)
    return None


def openapi_document(
    routes: Iterable[Route], *, base_path: str, version: str, schemas: Mapping[str, Any],
    open_reads: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routes``. The server URL is the base path alone (a
    relative reference), so it is right behind any proxy without X-Forwarded headers.
    ``open_reads``: the server serves protected reads to anyone (``public_read``), so only
    writes are described as needing a credential."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": f"{route.method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', openapi_path(route.path)).strip('_')}",
        }
        if route.description:
            operation["description"] = route.description
        if route.params:
            operation["parameters"] = [p.openapi() for p in route.params]
        if route.request_body is not None:
            operation["requestBody"] = dict(route.request_body)
        security = _security(route.security, open_reads)
        if security is not None:
            operation["security"] = security
        responses: dict[str, Any] = {}
        ok = [s for s in route.responses if s < 300] or [200]
        for status in sorted({*ok, *route.responses, *_DEFAULT_RESPONSES}):
            text = route.responses.get(status) or _DEFAULT_RESPONSES.get(status) or "OK"
            if status < 300:
                content: dict[str, Any] = {"schema": dict(route.schema) if route.schema else {}}
                responses[str(status)] = {"description": text, "content": {route.content_type: content}}
            else:
                responses[str(status)] = {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
        operation["responses"] = responses
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "burstbus API",
            "version": version,
            "description": (
                "burstbus's HTTP API: the voeventdb-compatible archive (`/apiv1`), processes, "
                "bursts, triggers and the event log (`/api`), live events as server-sent events, "
                "and VOEvent submission. The archive, notices, processes and bursts are open to "
                "read; the event log, trigger requests and the stream's other event types need a "
                "read credential (unless the server serves them openly); writes need the API token. "
                "Every error is JSON saying what was wrong."
            ),
        },
        "servers": [{"url": base_path or "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, **schemas},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
