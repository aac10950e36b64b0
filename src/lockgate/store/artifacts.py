"""Model artifacts by content: the bytes of each file a release pins, keyed by their sha256.

A release pins its artifacts by hash; with the bytes here too, any replica that reaches the
database can load the live release, with no shared project folder. Rows never change: the
same hash is the same bytes, so a second `put` of a hash is a no-op.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from lockgate.decide.decision import utcnow
from lockgate.errors import ConfigError
from lockgate.store import database
from lockgate.store.tables import model_artifacts


class ArtifactRepository:
    """Artifacts over one engine (`Store.artifacts`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, sha256: str, data: bytes) -> None:
        """Keep `data` under `sha256` (checked), unless it is kept already."""
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ConfigError(
                f"artifact {sha256[:12]}: its bytes do not hash to its name; not stored",
                hint="retrain the model (`lockgate train TASK --data FILE`)",
            )
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(model_artifacts).on_conflict_do_nothing(
            index_elements=["sha256"]
        )
        with self.engine.begin() as conn:
            conn.execute(
                statement,
                {"sha256": sha256, "size": len(data), "content": data, "created_at": utcnow()},
            )

    def get(self, sha256: str) -> bytes | None:
        """The bytes kept under `sha256`, checked against it; None when none are kept."""
        with database.read(self.engine) as conn:
            data = conn.execute(
                select(model_artifacts.c.content).where(model_artifacts.c.sha256 == sha256)
            ).scalar()
        if data is None:
            return None
        data = bytes(data)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ConfigError(
                f"artifact {sha256[:12]} in the database does not hash to its name; refusing it",
                hint="create the release again on a machine with the trained model "
                "(`lockgate release create TASK`)",
            )
        return data

    def has(self, sha256: str) -> bool:
        with database.read(self.engine) as conn:
            found = conn.execute(
                select(model_artifacts.c.sha256).where(model_artifacts.c.sha256 == sha256)
            ).first()
        return found is not None
