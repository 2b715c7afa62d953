"""``/static/``: aiohttp's static files, minus the names the operating system refuses.

aiohttp asks the file system about any name under the prefix; a name the OS cannot even look up
(a component over ``NAME_MAX`` bytes, 256 on Linux: ``File name too long``; a path over
``PATH_MAX``; text that has no bytes in the file-system encoding) raises ``OSError`` or
``UnicodeEncodeError`` there, which the app would answer 500. No such file can exist, so
:class:`StaticFiles` does not match such a name at all: the router's 404, in the API's JSON.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web


def _limit(directory: Path, name: str, fallback: int) -> int:
    try:
        return os.pathconf(directory, name)
    except (OSError, ValueError):  # not reported by this system or file system
        return fallback


class StaticFiles(web.StaticResource):
    """A ``StaticResource`` that only matches names the file system could hold."""

    def __init__(self, prefix: str, directory: Path):
        super().__init__(prefix, directory)
        root = Path(directory)
        self.name_max = _limit(root, "PC_NAME_MAX", 255)
        self.path_max = _limit(root, "PC_PATH_MAX", 4096)
        self.root_bytes = len(os.fsencode(root.resolve()))

    def possible(self, filename: str) -> bool:
        """Whether ``filename`` (relative, ``/``-separated) could name a file under the root."""
        try:
            encoded = os.fsencode(filename)
        except UnicodeError:
            return False
        if b"\0" in encoded or self.root_bytes + 1 + len(encoded) >= self.path_max:
            return False
        return all(len(part) <= self.name_max for part in encoded.split(b"/"))

    async def resolve(self, request: web.Request) -> tuple[web.UrlMappingMatchInfo | None, set[str]]:
        match, allowed = await super().resolve(request)
        if match is not None and not self.possible(match.get("filename", "")):
            return None, set()
        return match, allowed


def add_static(app: web.Application, prefix: str, directory: Path) -> StaticFiles:
    """``app.router.add_static(prefix, directory)``, with :class:`StaticFiles`."""
    resource = StaticFiles(prefix.rstrip("/"), directory)
    app.router.register_resource(resource)
    return resource
