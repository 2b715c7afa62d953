"""Errors the HTTP API answers with: always JSON, always saying what was wrong.

The body follows 4pisky voeventdb's error shape, so a voeventdb client sees what it would
see there: ``{"error": {"code": 400, "description": "Invalid query-string", "message": ...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


def dumps(value: Any) -> str:
    """JSON text as the API sends it (UTF-8, no NaN: a NaN would be a bug, not output)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response. Text taken from a request may hold lone surrogates (aiohttp decodes
    bytes that are not UTF-8 in headers with ``surrogateescape``), which UTF-8 cannot encode:
    an answer quoting them is then written with ASCII escapes (``\\udcff``) instead of failing."""
    try:
        return web.json_response(value, status=status, headers=headers, dumps=dumps)
    except UnicodeEncodeError:
        return web.json_response(value, status=status, headers=headers, dumps=_ascii_dumps)


def _ascii_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def error_body(status: int, description: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": status, "description": description, "message": message, **extra}}


class ApiError(Exception):
    """A refusal with an HTTP status (always 4xx for a caller's mistake) and a reason."""

    status = 400
    description = "Bad request"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if description is not None:
            self.description = description
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> web.Response:
        body = error_body(self.status, self.description, self.message, **self.extra)
        return json_response(body, status=self.status, headers=self.headers)


class InvalidQueryString(ApiError):
    """A query-string key or value the API cannot use (4pisky: ``InvalidQueryString``)."""

    status = 400
    description = "Invalid query-string"

    def __init__(self, reason: str, key: str | None = None, value: str | None = None):
        extra: dict[str, Any] = {}
        if key is not None:
            extra["parameter"] = key
            if value is not None:
                shown = value if len(value) <= 200 else value[:200] + "…"
                reason = f"could not use '{key}={shown}': {reason}"
        super().__init__(reason, **extra)


class LimitMaxExceeded(ApiError):
    """``limit`` above the maximum: 413 with 4pisky's description, as 4pisky answers."""

    status = 413
    description = "Max 'limit' value exceeded"

    def __init__(self, limit: int | str, maximum: int):
        super().__init__(
            f"you requested too many rows (limit={limit}); the maximum is {maximum}: "
            "page with limit and offset",
            parameter="limit",
            max_limit=maximum,
        )


class IvornNotSupplied(ApiError):
    status = 400
    description = "No IVORN supplied"


class IvornNotFound(ApiError):
    """An unknown IVORN. 404 (4pisky says 422; not-found is what HTTP clients expect)."""

    status = 404
    description = "IVORN not found"

    def __init__(self, ivorn: str):
        super().__init__(
            f"IVORN {ivorn!r} is not in the archive (if it was cut at '#', URL-encode it)",
            ivorn=ivorn,
        )


class Unavailable(ApiError):
    """The service cannot answer right now (projections missing, log closed): not the caller's fault."""

    status = 503
    description = "Service unavailable"
