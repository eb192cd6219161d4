"""What a backend (sqlite.py, postgres.py) provides: a connection's primitives, its placeholder,
its transaction and its error types. Everything built on them (base.py, people.py) is written
once, so both backends pass the same tests by construction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

__all__ = ["Row", "SqlBackend"]

Row = tuple[Any, ...]


class SqlBackend(ABC):
    dialect: str
    placeholder = "?"

    # -- what a backend provides -----------------------------------------------------------------

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]: ...

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def _executemany(self, sql: str, params: list[Sequence[Any]]) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction; rolled back, as StoreError, if anything in it fails."""

    @abstractmethod
    def close(self) -> None: ...

    def forget_overwritten(self) -> None:
        """Drop the copies of overwritten rows a backend still keeps in its own files (after a
        secret was sealed in place). Nothing by default: PostgreSQL's dead row versions are not
        in its dumps, and VACUUM reclaims them."""
        return

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)
