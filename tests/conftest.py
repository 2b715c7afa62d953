"""Suite-wide test set-up.

The suite can run on pytest-xdist workers (``-n 4 --dist loadfile``; serial by default, see pyproject): each
test file runs whole on one worker process, so module-scoped servers, the session loop that
Twisted's reactor is bound to, and the session's Prosody stay per process, as in a serial run.

Ports: every server the tests start gets its port from :func:`tests.ports.free_port` (a block
per worker, outside the kernel's ephemeral range), including the nats-servers that
``burstbus.bridges.nats.server`` picks a port for itself (``port=0``) and the tests that import
its ``free_port``; patched here, before any test module is imported, so that both names are ours.
"""

from __future__ import annotations

import burstbus.bridges.nats.server as nats_server
from tests import ports

nats_server.free_port = ports.free_port
