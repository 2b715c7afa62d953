#!/usr/bin/env python3
"""The image's health check: ``GET /healthz`` where burstbus's ``[http]`` section says it listens.

It reads the sources burstbus reads for that section — the TOML file (``--config FILE``, else
``./burstbus.toml``), then ``BURSTBUS_HTTP_*`` environment variables — without importing burstbus:
a check runs every 30 s, and the full loader imports every component (about a second of CPU).
tests/test_deploy.py checks that it finds the address ``burstbus.config.load_config`` gives.

Exit 0 (healthy) when burstbus answers and its log and projections are up. A component that is
down (an XMPP server, Slack or NATS unreachable) is printed and stays healthy: burstbus rides
those outages out, and replacing its container (Swarm, Kubernetes) would not end them. Watch
them on /healthz and /metrics (``burstbus_component_up``). Exit 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PREFIX = "BURSTBUS_HTTP_"
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def http_settings(config_file: Path | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """``[http]`` host, port, base_path and enabled, from the file then the environment (as the
    loader: a variable's name after ``BURSTBUS_`` is compared in lower case)."""
    settings: dict[str, Any] = {"enabled": True, "host": "127.0.0.1", "port": 8080, "base_path": ""}
    path = config_file if config_file is not None else Path("burstbus.toml")
    if config_file is not None or path.is_file():
        with open(path, "rb") as handle:
            settings.update({k: v for k, v in tomllib.load(handle).get("http", {}).items() if k in settings})
    for name, value in environ.items():
        if name.startswith("BURSTBUS_") and name[len("BURSTBUS_"):].lower().startswith("http_"):
            key = name[len(PREFIX):].lower()
            if key in settings:
                settings[key] = value
    enabled = settings["enabled"]
    if isinstance(enabled, str):
        enabled = enabled.strip().lower() in ("1", "true", "yes", "on")
    return {"enabled": bool(enabled), "host": str(settings["host"]), "port": int(settings["port"]),
            "base_path": str(settings["base_path"])}


def healthz_url(settings: Mapping[str, Any]) -> str:
    """Where to ask: the configured address, or loopback when it listens on every interface."""
    host = WILDCARDS.get(settings["host"], settings["host"])
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings['port']}{settings['base_path']}/healthz"


def verdict(status: int, body: Mapping[str, Any]) -> tuple[bool, str]:
    """Healthy or not, and one line saying why."""
    down = sorted(name for name, state in (body.get("components") or {}).items() if not state.get("up"))
    log_up = bool((body.get("log") or {}).get("up"))
    projections_up = bool((body.get("projections") or {}).get("up"))
    if status == 200:
        return True, "ok"
    if log_up and projections_up:
        return True, f"serving; components down: {', '.join(down) or 'none'}"
    return False, f"log up: {log_up}, projections up: {projections_up}; components down: {', '.join(down) or 'none'}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    config_file = Path(args[args.index("--config") + 1]) if "--config" in args else None
    try:
        settings = http_settings(config_file, os.environ)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"burstbus-healthcheck: cannot read the [http] settings: {exc}")
        return 1
    if not settings["enabled"]:
        print("burstbus-healthcheck: [http] is disabled, so there is no /healthz to ask")
        return 1
    url = healthz_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=8) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        print(f"burstbus-healthcheck: {url}: {exc}")
        return 1
    try:
        body = json.loads(raw)
    except ValueError:
        print(f"burstbus-healthcheck: {url}: HTTP {status}, not JSON")
        return 1
    healthy, why = verdict(status, body if isinstance(body, dict) else {})
    print(f"burstbus-healthcheck: {url}: HTTP {status}: {why}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
