"""Opening the JetStream event log as the service's configuration asks (``[log] backend = "jetstream"``).

Where the stream lives: ``[log] jetstream_url`` if set, else the ``[nats] url`` servers, else
the data directory's embedded nats-server. In that last case the server must run before the
log opens and stop after it closes, so the log owns it (``log.server``, stopped by
``log.close``); the NATS bridge then uses that server instead of starting its own. A command
run beside a service on the same data directory (``burstbus log``, ``verify``) uses the
service's server (found through its marker file) rather than starting a second one.

The connection uses the ``[nats]`` credentials and TLS options, and reconnects forever.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from burstbus.bridges.nats.config import connect_options, resolve_node_id
from burstbus.bridges.nats.server import EmbeddedNatsServer
from burstbus.store.jetstream import JetStreamEventLog

if TYPE_CHECKING:
    from burstbus.config import Config


def log_servers(config: Config) -> list[str]:
    """The seed URLs of the log's NATS cluster (empty: the embedded server)."""
    own = [u.strip() for u in config.log.jetstream_url.split(",") if u.strip()]
    return own or config.nats.servers()


async def open_jetstream_log(config: Config) -> JetStreamEventLog:
    section = config.log
    servers = log_servers(config)
    server: EmbeddedNatsServer | None = None
    if not servers:
        server = await EmbeddedNatsServer.attach_or_start(config.data_dir, port=config.nats.embedded_port)
        servers = [server.url]
    name = f"burstbus log {resolve_node_id(config.nats, config.data_dir)}"
    options = connect_options(config.nats, servers=servers, name=name)
    try:
        event_log = await JetStreamEventLog.open(
            servers, stream=section.stream, prefix=config.nats.prefix, replicas=section.replicas,
            duplicate_window=section.duplicate_window, poll_interval=section.poll_interval,
            timeout=section.timeout, connect_options=options,
        )
    except BaseException:
        if server is not None:
            with contextlib.suppress(Exception):
                await server.close()
        raise
    if server is not None:
        event_log.server = server
        event_log.after_close.append(server.close)
    return event_log
