"""Observability: redaction, logging, metrics and tracing."""
