"""Measuring releases: datasets, scorers, eval runs and calibrated thresholds."""
