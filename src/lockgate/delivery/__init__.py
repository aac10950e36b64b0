"""Delivering final outcomes: the outbox worker and the sinks it sends through."""
