"""docs/configuration.md is what the configuration classes say, and every key is explained."""

from __future__ import annotations

from pathlib import Path

from burstbus.configdoc import reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_the_reference_in_docs_is_the_one_the_code_generates() -> None:
    assert DOC.read_text() == reference(), "regenerate: python -m burstbus.configdoc > docs/configuration.md"


def test_every_key_says_what_it_is_for() -> None:
    unexplained = [line.split("|")[1].strip() + " in " + section for section, line in _rows() if line.rstrip().endswith("|  |")]
    assert not unexplained, f"keys without a #: comment in their section class: {unexplained}"


def test_a_key_can_be_set_from_the_environment_under_the_documented_name(tmp_path: Path) -> None:
    from burstbus.config import load_config

    config = load_config(environ={"BURSTBUS_LOG_POLL_INTERVAL": "0.25", "BURSTBUS_INGEST_THREADS": "3"})
    assert config.log.poll_interval == 0.25 and config.ingest.threads == 3
    assert "`BURSTBUS_LOG_POLL_INTERVAL`" in reference() and "`BURSTBUS_INGEST_THREADS`" in reference()


def _rows() -> list[tuple[str, str]]:
    section = ""
    out = []
    for line in reference().splitlines():
        if line.startswith("#"):
            section = line.lstrip("# ").strip()
        elif line.startswith("| `"):
            out.append((section, line))
    return out
