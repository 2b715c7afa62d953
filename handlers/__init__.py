"""burstbus.handlers — see docs/architecture.md."""
