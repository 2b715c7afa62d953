"""burstbus: one append-only, hash-chained event log for a GRB mission's ground segment."""

__version__ = "0.1.0"
