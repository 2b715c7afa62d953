"""The witness: signed checkpoints, verify --against, evidence bundles."""
