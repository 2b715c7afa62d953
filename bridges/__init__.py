"""burstbus.bridges — see docs/architecture.md."""
