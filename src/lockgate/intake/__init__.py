"""Intake: records from folders, webhooks, mailboxes and SQL tables become decisions.

Mapping and coercion, schema drift, de-duplication and quarantine, one commit per batch with
the source's cursor: nothing lost, nothing decided twice, nothing odd silently dropped.
"""
