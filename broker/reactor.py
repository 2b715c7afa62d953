"""Twisted on burstbus's one asyncio loop: install the asyncioreactor once, bridge Deferreds.

Comet's protocol code is Twisted; burstbus is asyncio. Twisted's ``AsyncioSelectorReactor``
drives Twisted's sockets and timers from an asyncio loop, so both share one thread and one loop.
Three rules (see shared/FIELD-NOTES.md):

* The reactor must be installed **before anything imports** ``comet.protocol`` (those modules
  import ``twisted.internet.reactor``, which would install the default reactor). So the broker
  modules that subclass Comet's protocols (``receiver``, ``broadcaster``, ``upstream``) are
  imported only after :func:`install` — lazily, by the service and the CLI, inside the running
  loop. They call :func:`require_installed` at import time to fail with a clear message.
* ``reactor.startRunning(installSignalHandlers=False)``: asyncio owns the loop and the signals;
  without startRunning Twisted's startup triggers (its thread pool) never fire.
* ``await deferred`` inside an asyncio task fails; use :func:`wait_for_deferred`
  (``Deferred.asFuture``). The other way is :func:`as_deferred` (``Deferred.fromFuture``).

The reactor is bound to the loop it was installed on, for the life of the process; installing
again on the same loop is a no-op, on another loop an error (tests share one session loop).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

_loop: asyncio.AbstractEventLoop | None = None


class ReactorError(RuntimeError):
    """The Twisted reactor cannot be used as asked (wrong loop, not installed, another reactor)."""


def install(loop: asyncio.AbstractEventLoop | None = None) -> Any:
    """Install Twisted's asyncioreactor on ``loop`` (default: the running loop) and start it."""
    global _loop
    loop = loop or asyncio.get_running_loop()
    if _loop is not None:
        if _loop is not loop:
            raise ReactorError("the Twisted reactor is already bound to another asyncio loop")
        from twisted.internet import reactor

        return reactor
    if "twisted.internet.reactor" in sys.modules:
        existing = sys.modules["twisted.internet.reactor"]
        raise ReactorError(
            f"a Twisted reactor ({type(existing).__name__}) was installed before burstbus's: "
            "something imported comet.protocol or twisted.internet.reactor too early"
        )
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)
    from twisted.internet import reactor

    _route_twisted_logs()
    reactor.startRunning(installSignalHandlers=False)  # type: ignore[attr-defined]
    _loop = loop
    return reactor


def installed() -> bool:
    return _loop is not None


def running_reactor() -> Any:
    """The installed reactor, for ``listenTCP``/``connectTCP``/``callLater``.

    Typed ``Any`` on purpose: ``twisted.internet.reactor`` is a module-level object whose stubs
    declare none of the interfaces (IReactorTCP, IReactorTime) the installed reactor provides,
    so every call through it would otherwise need its own ``type: ignore``."""
    require_installed()
    from twisted.internet import reactor

    return reactor


def require_installed() -> None:
    """Called at import time by modules that import ``comet.protocol``."""
    if _loop is None:
        raise ReactorError("call burstbus.broker.reactor.install() before importing the VTP protocol modules")


def wait_for_deferred(d: Any) -> asyncio.Future[Any]:
    """An awaitable for a Twisted Deferred on the reactor's loop."""
    require_installed()
    assert _loop is not None
    return d.asFuture(_loop)


async def stop_listening(port: Any, timeout: float = 5.0) -> None:
    """Close a listening port and wait until its socket is closed (Twisted does that on the
    reactor's next turn). Bounded: a stop must never hang on it."""
    try:
        async with asyncio.timeout(timeout):  # not wait_for: see broadcaster.cancel_and_wait
            await wait_for_deferred(port.stopListening())
    except TimeoutError:
        log.warning("listening port %s did not report closing within %gs", port, timeout)


async def wait_until(condition: Callable[[], Any], timeout: float, every: float = 0.02) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` passes; whether it became true.
    (Twisted reports a closed connection on the reactor's next turn, not at once.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(every)
    return True


def as_deferred(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine as a task and give Twisted a Deferred for its result."""
    from twisted.internet.defer import Deferred

    return Deferred.fromFuture(asyncio.ensure_future(coro))


def _route_twisted_logs() -> None:
    """Send Twisted's (and so Comet's) log messages to Python logging under ``twisted``."""
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    observer: Any = STDLibLogObserver(name="twisted")  # provides ILogObserver (zope), unseen by mypy
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
