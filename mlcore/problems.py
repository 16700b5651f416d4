"""What a check found wrong in an input: where and what. Shared by validation and the id
joins (kept apart from both so neither imports the other)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_ROWS_LISTED = 5  # rows named per problem; the rest are counted


@dataclass(frozen=True)
class Problem:
    where: str  # HDU / column / row, e.g. "HDU CATALOG column 'wave' rows 3, 9"
    what: str  # what is wrong and what would be right

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"
