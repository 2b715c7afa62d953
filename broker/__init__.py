"""burstbus.broker — see docs/architecture.md."""
