"""burstbus.bots — see docs/architecture.md."""
