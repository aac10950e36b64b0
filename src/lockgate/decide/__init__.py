"""Deciding: task files, the decision record, the pipeline, the model chain, policy, validation
and batches. Depends on providers and on small storage Protocols, never on SQLAlchemy."""
