"""``[[pipelines]]`` and ``[orchestrator]``: read from the file, and a bad graph refused at start
with the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from burstbus.config import ConfigError, load_config
from burstbus.handlers.orchestrator.config import OrchestratorSection, PipelinesSection

GOOD = """
[orchestrator]
data_kinds = ["vhf.eclairs", "vhf.attitude", "vhf.mxt"]

[[pipelines]]
name = "ecl-loc"
process = "eclairs-loc"
needs = ["vhf.eclairs", "vhf.attitude"]
nats_subject = "svom.pipelines.ecl"
produces = ["Q1.TT_ECL"]
timeout = 120
max_attempts = 4
backoff = 15
parameters = { threshold = 6.5, mode = "fast" }
request_roles = ["ba", "approver"]

[[pipelines]]
name = "mxt-loc"
needs = ["vhf.mxt"]
scope = "observation"
mode = "any"
url = "http://127.0.0.1:8200/run"

[[pipelines]]
name = "summary"
needs = ["Q1.TT_ECL"]
url = "https://pipelines.fsc.example/summary"
"""


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "burstbus.toml"
    path.write_text(text)
    return load_config(path, environ={})


def test_pipelines_are_read_from_the_file(tmp_path: Path) -> None:
    config = load(tmp_path, GOOD)
    section = config.section(PipelinesSection)
    ecl, mxt, summary = section.pipelines
    assert (ecl.name, ecl.process_name, ecl.needs, ecl.mode, ecl.scope) == (
        "ecl-loc", "eclairs-loc", ("vhf.eclairs", "vhf.attitude"), "all", "burst")
    assert ecl.target == {"nats": "svom.pipelines.ecl"} and mxt.target == {"url": "http://127.0.0.1:8200/run"}
    assert (ecl.timeout, ecl.max_attempts, ecl.backoff) == (120, 4, 15)
    assert ecl.parameters == {"threshold": "6.5", "mode": "fast"}
    assert ecl.request_roles == ("ba", "approver") and summary.request_roles == ("ba",)
    assert (mxt.scope, mxt.mode, mxt.process_name) == ("observation", "any", "mxt-loc")
    assert section.pipeline("ECL-LOC") is ecl
    assert config.section(OrchestratorSection).data_kinds == ("vhf.eclairs", "vhf.attitude", "vhf.mxt")


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (('needs = ["Q1.TT_ECL"]', 'needs = ["Q1.TT_EC"]'), "pipelines[2].needs[0]",
         "no pipeline produces 'Q1.TT_EC' and orchestrator.data_kinds does not list it (did you mean 'Q1.TT_ECL'?)"),
        (('needs = ["vhf.eclairs", "vhf.attitude"]', 'needs = ["vhf.eclairs", "summary.out"]'), "pipelines[0].needs[1]",
         "no pipeline produces 'summary.out'"),
        (('nats_subject = "svom.pipelines.ecl"', 'nats_subject = "svom.pipelines.ecl"\nurl = "http://x/"'),
         "pipelines[0]", "needs exactly one way to dispatch it: nats_subject or url"),
        (('url = "http://127.0.0.1:8200/run"', 'url = "ftp://127.0.0.1/run"'), "pipelines[1].url", "must be an http://"),
        (('request_roles = ["ba", "approver"]', 'request_roles = ["ba", "aprover"]'), "pipelines[0].request_roles[1]",
         "must be one of viewer, ba, approver, admin"),
        (('scope = "observation"', 'scope = "pass"'), "pipelines[1].scope", "must be one of burst, observation"),
        (('name = "summary"', 'name = "ECL-loc"'), "pipelines[2].name", "duplicate pipeline 'ECL-loc'"),
        (('max_attempts = 4', 'max_attempts = 0'), "pipelines[0].max_attempts", "must be at least 1"),
        (('needs = ["vhf.mxt"]', 'needs = []'), "pipelines[1].needs", "a pipeline needs at least one data kind"),
    ],
)
def test_a_bad_pipeline_is_refused_naming_it(tmp_path: Path, change: tuple[str, str], key: str, problem: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_a_cycle_is_refused_naming_its_path(tmp_path: Path) -> None:
    text = GOOD.replace('needs = ["Q1.TT_ECL"]\nurl', 'needs = ["Q1.TT_ECL"]\nproduces = ["vhf.attitude"]\nurl')
    text = text.replace('data_kinds = ["vhf.eclairs", "vhf.attitude", "vhf.mxt"]', 'data_kinds = ["vhf.eclairs", "vhf.mxt"]')
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.key == "pipelines[0].produces"
    assert caught.value.problem == ("the pipelines form a cycle, none could ever start: ecl-loc (makes Q1.TT_ECL) → "
                                    "summary (makes vhf.attitude) → ecl-loc")


def test_pipelines_must_be_an_array_of_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, '[pipelines]\nname = "x"\n')
    assert caught.value.key == "pipelines" and "[[pipelines]]" in caught.value.problem
    with pytest.raises(ConfigError) as unknown:
        load(tmp_path, '[orchestrator]\ndata_kinds = ["a"]\n[[pipelines]]\nname = "x"\nneeds = ["a"]\nurl = "http://h/"\nneeeds = 1\n')
    assert unknown.value.key == "pipelines[0].neeeds"
