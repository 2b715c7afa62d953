"""Refusals of credentials and the wrong-credential throttle, shared by every way in.

Apart from :mod:`~.access` so that :mod:`~.identity` (people's sessions and tokens) and the
read side's shared tokens count failures against the same addresses without importing each other.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from burstbus.bridges.http.errors import ApiError

#: Failed token checks an address may make per window before it is refused.
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0
#: Addresses remembered at most (the oldest are forgotten first).
MAX_ADDRESSES = 10_000


class Unauthorized(ApiError):
    """401: no credentials or wrong ones; says how to authenticate."""

    status = 401
    description = "Unauthorized"

    def __init__(self, message: str, error: str = "invalid_request"):
        super().__init__(
            message, headers={"WWW-Authenticate": f'Bearer realm="burstbus", error="{error}"'}
        )


class Forbidden(ApiError):
    status = 403
    description = "Forbidden"


class Throttled(ApiError):
    status = 429
    description = "Too many requests"

    def __init__(self, retry_after: float):
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(
            f"too many wrong tokens from this address; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )
        self.seconds = seconds


class FailureThrottle:
    """Wrong tokens per client address in a sliding window; bounded memory."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = FAILURE_WINDOW,
        max_addresses: int = MAX_ADDRESSES,
    ):
        self.max_failures = max_failures
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def wait(self, address: str, now: float | None = None) -> float:
        """Seconds before ``address`` may try a token again (0: now)."""
        now = time.monotonic() if now is None else now
        times = self._recent(address, now)
        if times is None or len(times) < self.max_failures:
            return 0.0
        return times[-self.max_failures] + self.window - now

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = self._recent(address, now)
        if times is None:
            times = self._failures[address] = deque(maxlen=self.max_failures)
        times.append(now)
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
