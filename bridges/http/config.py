"""``[http]``: the HTTP API and web pages section, beside the bridge that serves them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from burstbus.config import ConfigError, resolve_secret


@dataclass(frozen=True)
class HttpSection:
    """The HTTP API (voeventdb-compatible ``/apiv1/``), VOEvent submission, health and metrics."""

    #: Serve the API and the web pages at all.
    enabled: bool = True
    #: The address to listen on (``0.0.0.0`` inside a container, behind its port mapping).
    host: str = "127.0.0.1"
    #: 0 picks a free port (tests).
    port: int = field(default=8080, metadata={"minimum": 0, "maximum": 65535})
    #: Bearer token for ``POST /api/voevents`` (``env:NAME`` or ``file:/path`` to keep it out
    #: of the file). Empty: submission is refused (403). It also opens the protected reads.
    token: str = ""
    #: Bearer token (or sign-in) for the protected reads only: the event log, trigger requests,
    #: the audit page and the live stream's non-public event types (``env:``/``file:`` as for
    #: ``token``). Empty: only ``token`` opens them; with neither they are closed.
    read_token: str = ""
    #: Serve the protected reads to anyone, without a token (an explicit choice: they show who
    #: is on duty, pending trigger requests and the commands Burst Advocates gave).
    public_read: bool = False
    #: Serve the process table (``/processes``, ``/api/processes``, a burst's runs and their
    #: statuses in the live stream) to anyone. Off: signed-in readers only (viewer and up), as
    #: the science centre's orchestrator page is; the notices, bursts and ``/apiv1`` stay public.
    public_processes: bool = False
    #: Prefix when served behind a reverse proxy, e.g. ``/burstbus``.
    base_path: str = ""
    #: The web UI's address as users reach it (``https://fsc.example/burstbus``), for links in
    #: chat messages. Empty: ``http://host:port`` + base_path.
    public_url: str = ""
    #: Single sign-on through the centre's reverse proxy: the request header in which the proxy
    #: names the signed-in person by bare JID (``X-Remote-User``, ``X-Forwarded-Email``…), believed
    #: only from ``sso_proxies``. Empty: off (people sign in with ``burstbus user`` accounts).
    sso_header: str = ""
    #: Addresses or networks of the reverse proxies whose ``sso_header`` is believed
    #: (``["127.0.0.1/32"]``); a request from anywhere else is treated as if it had no such header.
    sso_proxies: tuple[str, ...] = ()
    #: Seconds a client has to send a request's line and headers, from the connection's
    #: opening (or a keep-alive request's first byte): then 408 and the connection is closed,
    #: so that a client sending a byte at a time cannot hold connections open.
    header_timeout: float = field(default=10.0, metadata={"minimum": 0.1})
    #: Seconds a client has to send a request's body once its headers are in: then 408, the
    #: connection is closed and a VOEvent upload is recorded as a ``voevent.rejected``
    #: (``timeout``), as VTP records a frame that does not arrive in time.
    body_timeout: float = field(default=30.0, metadata={"minimum": 0.1})

    def link_base(self) -> str:
        """Where links in messages point: ``public_url``, else this server's own address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        # "all interfaces" is no address to open: name the one that surely works here (and
        # the chat components warn at start that it works only on this machine).
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://[{host}]:{self.port}{self.base_path}" if ":" in host else f"http://{host}:{self.port}{self.base_path}"



def check_http(http: HttpSection) -> None:
    """A base path that is a path; secrets that resolve (and a read token that is not empty)."""
    if http.base_path and (not http.base_path.startswith("/") or http.base_path.endswith("/")):
        raise ConfigError("http.base_path", f"must start with / and not end with one, like /burstbus (got {http.base_path!r})")
    if http.sso_header and not http.sso_proxies:
        raise ConfigError("http.sso_proxies", "sso_header is set but no proxy is trusted to set it: list the "
                                               "reverse proxy's address, like [\"127.0.0.1/32\"]")
    for proxy in http.sso_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError("http.sso_proxies", f"{proxy!r} is not an address or network (like 10.0.0.5 or 10.0.0.0/24)") from None
    if http.token:
        resolve_secret(http.token, "http.token")
    if http.read_token and not resolve_secret(http.read_token, "http.read_token").strip():
        raise ConfigError("http.read_token", "resolves to an empty value (leave the key out to use only http.token)")
