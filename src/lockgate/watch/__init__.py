"""Watching a task run: roll-ups over time (history), live accuracy (spot checks and
feedback), drift against a release's reference profile, alerts and their channels, and the
retraining loop."""
