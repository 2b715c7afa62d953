"""confluent-kafka's Producer on the asyncio loop: produce without blocking, await delivery reports.

``Producer.produce`` only queues (it raises ``BufferError`` when librdkafka's queue is full);
the delivery reports arrive through ``poll``/``flush``, which block. So a thread of our own
polls (``poll(0.1)`` in a loop) and hands each report to the loop with
``call_soon_threadsafe`` — once per ``poll`` that served any, not once per message, so a batch
of 500 reports wakes the loop once; :meth:`AsyncProducer.produce` returns a future of the
message's (partition, offset). librdkafka's own log lines go to Python logging
(``burstbus.bridges.kafka.librdkafka``) instead of stderr; its errors (a broker unreachable, a
fatal idempotence error) are kept for health.

Closing purges what is still queued or in flight before closing librdkafka: ``close`` would
otherwise wait for every message, for ever with ``message.timeout.ms = 0``. A purged message
may still reach the topic (a request already sent); the outbox's scan of the tail covers that.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from burstbus.bridges.kafka.client import kafka_error_text

log = logging.getLogger(__name__)
librdkafka_log = logging.getLogger("burstbus.bridges.kafka.librdkafka")

#: What the outbox's guarantees rest on; a configuration saying otherwise is refused.
REQUIRED: Mapping[str, str] = {"enable.idempotence": "true", "acks": "all"}
#: Keys this module sets itself.
_OURS = ("error_cb", "on_delivery", "logger")


class ProducerConfigError(ValueError):
    """librdkafka (or the outbox) refuses the producer settings: not retried, fix the config."""


#: Delivery errors that no retry can change: the broker refuses this message itself (too
#: large for the topic, not a valid record). The outbox skips such a message, as it skips one
#: larger than ``message.max.bytes``, instead of stopping every later notice behind it.
REFUSED_FOR_GOOD = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE, KafkaError.INVALID_MSG, KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_TIMESTAMP,
})


class DeliveryFailed(RuntimeError):
    """A message was not delivered (the broker refused it, it timed out, the producer failed)."""

    def __init__(self, error: KafkaError | str):
        text = error if isinstance(error, str) else f"{error.name()}: {error.str()}"
        super().__init__(text)
        self.error = error if isinstance(error, KafkaError) else None

    @property
    def fatal(self) -> bool:
        return self.error is not None and self.error.fatal()

    @property
    def refused_for_good(self) -> bool:
        """The broker refuses this message as such (:data:`REFUSED_FOR_GOOD`)."""
        return self.error is not None and self.error.code() in REFUSED_FOR_GOOD


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


def producer_settings(config: Mapping[str, Any], *, delivery_timeout: float) -> dict[str, Any]:
    """The outbox's producer configuration from the cluster's (pure).

    Idempotence and ``acks=all`` are required (an explicit contrary value is refused, not
    overridden: the operator meant something else); ``message.timeout.ms`` comes from the
    output's ``delivery_timeout`` unless the settings give it (0: retry until delivered)."""
    out = {k: v for k, v in config.items() if k not in _OURS}
    for key, wanted in REQUIRED.items():
        if key in out and _text(out[key]) != wanted:
            raise ProducerConfigError(f"{key} = {out[key]!r}: the outbox needs {key} = {wanted} (nothing twice on the topic)")
        out[key] = True if wanted == "true" else wanted
    for alias in ("message.timeout.ms", "delivery.timeout.ms"):
        if alias in out:
            break
    else:
        out["message.timeout.ms"] = int(round(delivery_timeout * 1000))
    return out


def check_producer_settings(config: Mapping[str, Any]) -> None:
    """Let librdkafka judge the settings now (a Producer made and closed at once, nothing
    sent), so a bad key or value is refused at start with librdkafka's own words."""
    try:
        producer = Producer({**config, "logger": librdkafka_log})
    except KafkaException as exc:
        raise ProducerConfigError(kafka_error_text(exc)) from None
    close = getattr(producer, "close", None)
    if close is not None:
        close()


@dataclass(frozen=True, slots=True)
class Delivered:
    partition: int
    offset: int
    #: Seconds from ``produce`` to the delivery report.
    latency: float


class AsyncProducer:
    """One producer session (see the module doc). Build it on the loop that awaits it."""

    def __init__(self, config: Mapping[str, Any], *, name: str):
        self.name = name
        self._loop = asyncio.get_running_loop()
        #: Futures of messages produced and not yet reported, by a counter.
        self._pending: dict[int, tuple[asyncio.Future[Delivered], float]] = {}
        self._counter = 0
        #: The last error librdkafka reported outside a delivery (broker down, fatal …).
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.errors_total = 0
        #: A fatal error ends this session: every pending message fails with it.
        self.fatal: KafkaError | None = None
        self.closed = False
        #: Reports served by the current ``poll`` (filled and handed over in the polling thread).
        self._served: list[tuple[int, Delivered | DeliveryFailed]] = []
        try:
            self._producer = Producer({**config, "error_cb": self._on_error, "logger": librdkafka_log})
        except KafkaException as exc:
            raise ProducerConfigError(kafka_error_text(exc)) from None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"burstbus-kafka-{name}", daemon=True)
        self._thread.start()

    # -- producing ------------------------------------------------------------------------

    async def produce(self, topic: str, value: bytes, *, key: bytes | None, headers: Sequence[tuple[str, bytes]]) -> asyncio.Future[Delivered]:
        """Queue one message; the future resolves with its delivery report (or fails with
        :class:`DeliveryFailed`). Waits (without blocking the loop) while the queue is full."""
        if self.fatal is not None:
            raise DeliveryFailed(self.fatal)
        if self.closed:
            raise DeliveryFailed("the producer is closed")
        self._counter += 1
        token = self._counter
        future: asyncio.Future[Delivered] = self._loop.create_future()
        started = time.monotonic()
        self._pending[token] = (future, started)
        callback = self._reporter(token, started)
        delay = 0.005
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=list(headers), on_delivery=callback)
                return future
            except BufferError:  # librdkafka's queue is full: the poll thread drains it
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
            except KafkaException as exc:
                self._pending.pop(token, None)
                raise DeliveryFailed(exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)) from None

    @property
    def waiting(self) -> int:
        """Messages produced and not yet reported."""
        return len(self._pending)

    def oldest_wait(self) -> float:
        """Seconds the oldest unreported message has waited (0 if none)."""
        if not self._pending:
            return 0.0
        return time.monotonic() - min(started for _, started in self._pending.values())

    # -- the poll thread and its callbacks (run in that thread) -----------------------------

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.1)
            except Exception:  # a callback failing must not end delivery reports
                log.exception("%s: poll failed", self.name)
            self._hand_over()

    def _hand_over(self) -> None:
        if self._served:
            served, self._served = self._served, []
            self._call(self._resolve_all, served)

    def _reporter(self, token: int, started: float) -> Any:
        def report(error: KafkaError | None, message: Any) -> None:
            result: Delivered | DeliveryFailed
            if error is not None:
                result = DeliveryFailed(error)
            else:
                result = Delivered(int(message.partition()), int(message.offset()), time.monotonic() - started)
            self._served.append((token, result))

        return report

    def _on_error(self, error: KafkaError) -> None:
        self._call(self._record_error, error)

    def _call(self, fn: Any, *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    # -- on the loop ---------------------------------------------------------------------

    def _resolve_all(self, served: list[tuple[int, Delivered | DeliveryFailed]]) -> None:
        for token, result in served:
            entry = self._pending.pop(token, None)
            if entry is None or entry[0].done():
                continue
            if isinstance(result, DeliveryFailed):
                entry[0].set_exception(result)
            else:
                entry[0].set_result(result)

    def _record_error(self, error: KafkaError) -> None:
        self.errors_total += 1
        self.last_error = f"{error.name()}: {error.str()}"
        self.last_error_at = time.time()
        if error.fatal():
            log.error("%s: fatal producer error, the session ends: %s", self.name, self.last_error)
            self.fatal = error
            self._fail_pending(DeliveryFailed(error))
        else:
            log.warning("%s: %s", self.name, self.last_error)

    def _fail_pending(self, failure: DeliveryFailed) -> None:
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(failure)

    # -- closing -------------------------------------------------------------------------

    async def close(self) -> None:
        """Purge what is queued or in flight, stop the poll thread, close librdkafka."""
        if self.closed:
            return
        self.closed = True
        await asyncio.shield(asyncio.to_thread(self._close_blocking))
        self._fail_pending(DeliveryFailed("the producer was closed before the delivery report"))

    def _close_blocking(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._producer.purge()
            self._producer.flush(0)  # serves the purged messages' reports
            self._hand_over()
            close = getattr(self._producer, "close", None)  # older bindings close in the destructor
            if close is not None:
                close()
        except Exception:
            log.exception("%s: closing the producer failed", self.name)
