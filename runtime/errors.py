"""One error type for everything a user can cause.

The CLI prints these as a single line (`edgefer: error: ...`) and exits non-zero; any
other exception is a bug in edgefer and keeps its traceback.
"""
from __future__ import annotations

from pathlib import Path


class EdgeferError(Exception):
    """A user-facing failure: says which file, what is wrong, and how to fix it."""

    def __init__(self, where: str | Path | None, cause: str, fix: str | None = None):
        self.where, self.cause, self.fix = where, cause, fix
        parts = [f"{where}: {cause}" if where else cause]
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__("; ".join(parts))

    def __reduce__(self):
        """Pickle by its three fields, so an error raised in a worker process (a bench row) reaches
        the parent whole instead of failing to unpickle."""
        return type(self), (self.where, self.cause, self.fix)
