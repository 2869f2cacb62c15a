"""The newsroom's own comment table (SQLite): what the site keeps, whatever moderates it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS comments (
    id          TEXT PRIMARY KEY,  -- the id the moderation service knows it by
    article     TEXT NOT NULL,
    author_id   TEXT NOT NULL,
    author_name TEXT NOT NULL,
    content     TEXT NOT NULL,
    posted_at   TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',  -- pending | approved | held | rejected
    decided_at  TEXT NOT NULL DEFAULT ''          -- of the decision that set `status`
)
"""


@dataclass(frozen=True)
class Comment:
    id: str
    article: str
    author_id: str
    author_name: str
    content: str
    posted_at: str
    status: str

    @property
    def published(self) -> bool:
        return self.status == "approved"

    def as_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "author": self.author_name,
            "content": self.content,
            "posted_at": self.posted_at,
            "status": self.status,
        }


class CommentTable:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            db.execute(SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:  # one transaction
                yield db
        finally:
            db.close()

    def add(self, id: str, article: str, author_id: str, author_name: str, content: str) -> None:
        posted_at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connection() as db:
            db.execute(
                "INSERT INTO comments (id, article, author_id, author_name, content, posted_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (id, article, author_id, author_name, content, posted_at),
            )

    def record_decision(self, id: str, status: str, decided_at: str) -> bool:
        """Apply a decision unless a later one was applied already (webhooks may be retried
        and arrive out of order). Whether the comment changed."""
        with self._connection() as db:
            changed = db.execute(
                "UPDATE comments SET status = ?, decided_at = ?"
                " WHERE id = ? AND decided_at <= ? AND status != ?",
                (status, decided_at, id, decided_at, status),
            )
            return changed.rowcount > 0

    def forget(self, id: str) -> None:
        with self._connection() as db:
            db.execute("DELETE FROM comments WHERE id = ?", (id,))

    def thread(self, article: str, author_id: str) -> list[Comment]:
        """The article's published comments, and the reader's own whatever their status."""
        with self._connection() as db:
            rows = db.execute(
                "SELECT id, article, author_id, author_name, content, posted_at, status"
                " FROM comments WHERE article = ? AND (status = 'approved' OR author_id = ?)"
                " ORDER BY posted_at, rowid",
                (article, author_id),
            ).fetchall()
        return [Comment(*row) for row in rows]
