"""The bot's filled ``world`` (tests/bots/conftest.py) for the triggers projection's tests."""

from tests.bots.conftest import world  # noqa: F401  (a fixture, shared)
