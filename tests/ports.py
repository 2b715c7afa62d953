"""Free TCP ports for the servers the tests start, safe when pytest-xdist runs several workers.

``socket.bind(("127.0.0.1", 0))`` then close hands out a port from the kernel's ephemeral range
(``net.ipv4.ip_local_port_range``), where every outgoing connection also takes its local port
and where another worker's ``bind(0)`` may get the same port before our server has bound it.
Instead each worker takes ports from its own block *below* the ephemeral range (the kernel never
hands those out by itself), walking it from a random start (two separate pytest runs on one
machine rarely meet) and checking that each port can be bound right now (skipping one in use,
even in TIME_WAIT). Without xdist the process is worker 0.
"""

from __future__ import annotations

import os
import random
import socket
import threading

_BLOCK = 700  # ports per worker: 16 workers fit between 20000 and the usual ephemeral low 32768
_LOW = 20000


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw0", "gw1", ...
    digits = "".join(c for c in worker if c.isdigit())
    return int(digits) if digits else 0


class _Allocator:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = -1
        self.start = self.end = self.next = 0

    def _setup(self) -> None:
        # per process (a forked child gets a fresh walk, not its parent's)
        self.pid = os.getpid()
        low = _ephemeral_low()
        blocks = max(1, (low - _LOW) // _BLOCK)
        index = _worker_index() % blocks if low - _LOW >= _BLOCK else 0
        if low - _LOW >= _BLOCK:
            self.start, self.end = _LOW + index * _BLOCK, _LOW + (index + 1) * _BLOCK
        else:  # an unusual ephemeral range: fall back to the kernel's choice
            self.start = self.end = 0
        self.next = random.randrange(self.start, self.end) if self.end else 0

    def take(self, host: str) -> int:
        with self.lock:
            if self.pid != os.getpid():
                self._setup()
            if not self.end:
                return _kernel_port(host)
            for _ in range(self.end - self.start):
                port = self.next
                self.next = self.start + (self.next + 1 - self.start) % (self.end - self.start)
                if _bindable(host, port):
                    return port
            return _kernel_port(host)  # the whole block busy: what the tests did before


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _kernel_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


_allocator = _Allocator()


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that is free now and that no other test worker will be handed."""
    return _allocator.take(host)
