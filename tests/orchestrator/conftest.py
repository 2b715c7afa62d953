"""The orchestrator's tests: real nats-servers (tests/nats's fixtures, stopped by pid) and a
core of log, state, ingest and the processes projection beside them; a real Prosody for the
room test (tests/xmpp's fixtures, started only when a test asks for them)."""

from tests.nats.conftest import Core, Servers, client, core, server, servers  # noqa: F401  (fixtures, shared)
from tests.xmpp.conftest import clients, prosody, rooms, started  # noqa: F401  (fixtures, shared)
