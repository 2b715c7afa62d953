"""What the witness tests share: a key, a log with bursts in it, and the two ways of tampering
with a copy of a log that the witness exists to catch (truncation, a rewrite re-chained)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from burstbus.config import load_config
from burstbus.events import GENESIS_HASH, Event
from burstbus.handlers.witness.keys import generate_key_file, load_signing_key
from burstbus.handlers.witness.witness import Signed, Signer
from burstbus.service import Core
from burstbus.store.chain import record_hash
from tests.packets import voevent

BURST = "sb26120201"
OTHER = "sb26120202"


def make_key(root: Path) -> Path:
    path = root / "keys" / "witness.key"
    generate_key_file(path)
    return path


def burstbus(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command line, as an operator (or an auditor) runs it."""
    return subprocess.run([sys.executable, "-m", "burstbus.cli", "--data-dir", str(data_dir), *args],
                          cwd=data_dir.parent, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def config_for(data_dir: Path, key_file: Path | None = None, **witness: Any) -> Any:
    section: dict[str, Any] = {"enabled": key_file is not None, **witness}
    if key_file is not None:
        section["key_file"] = str(key_file)
    return load_config(environ={}, overrides={
        "data": {"dir": str(data_dir)}, "nats": {"enabled": False}, "http": {"enabled": False},
        "vtp": {"enabled": False}, "witness": section,
    })


def notice(n: int, burst: str, *, cites: list[tuple[str, str]] | None = None) -> bytes:
    return voevent(f"ivo://test.example/svom#{burst}_{n}", params={"Burst_Id": burst}, cites=cites,
                   description=f"notice {n} of {burst} \u00e9t\u00e9")  # non-ASCII: exact bytes survive


async def submit(core: Core, raw: bytes) -> int:
    result = await core.ingest.submit(raw, via="local", peer="test")
    assert result.outcome == "accepted", result
    assert result.seq is not None
    return result.seq


async def sign(key_file: Path, core: Core, log_name: str = "fsc.test") -> Signed:
    return await Signer(core.log, load_signing_key(key_file), log_name).sign(actor="test", reason="test")


async def noise(core: Core, n: int, tag: str) -> None:
    """Events of nobody's burst between the burst's own (what a bundle carries but does not claim)."""
    await core.log.append([Event("process.status", {"n": i, "status": "running", "tag": tag}, stream="other", actor="t")
                           for i in range(n)])


def copy_log(src: Path, dst: Path) -> Path:
    """A consistent copy of a SQLite log (its backup API), into ``dst`` (a file)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as source, sqlite3.connect(dst) as target:
        source.backup(target)
    return dst


def truncate(path: Path, rows: int = 1) -> None:
    """Delete the last ``rows`` records, after dropping the append-only trigger (in a copy!)."""
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER events_append_only_delete")
        conn.execute("DELETE FROM events WHERE seq > (SELECT MAX(seq) FROM events) - ?", (rows,))


def rewrite(path: Path, seq: int, change: Callable[[str], str]) -> None:
    """Change the stored data of record ``seq`` and re-chain every record after it, so that the
    chain is consistent again (``burstbus verify`` finds nothing)."""
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER events_append_only_update")
        before = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq - 1,)).fetchone()
        prev = before[0] if before else GENESIS_HASH
        rows = conn.execute("SELECT seq, id, type, stream, actor, occurred_at, recorded_at, data FROM events "
                            "WHERE seq >= ? ORDER BY seq", (seq,)).fetchall()
        for number, id_, type_, stream, actor, occurred_at, recorded_at, data in rows:
            if number == seq:
                changed = change(data)
                assert changed != data, "the rewrite must change something"
                data = changed
            digest = record_hash(prev_hash=prev, seq=number, id=id_, type=type_, stream=stream, actor=actor,
                                 occurred_at=occurred_at, recorded_at=recorded_at, data_json=data)
            conn.execute("UPDATE events SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?", (data, prev, digest, number))
            prev = digest

