"""Read models derived from the log: voeventdb, processes, bursts."""
