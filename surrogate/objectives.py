"""A campaign's objectives as one typed value (no torch or BoTorch at import: campaign files stay quick to read)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Objectives:
    """A campaign's objectives, in order, with their directions ("maximize" or "minimize"): the one place a
    direction becomes a sign. Every reader of a campaign (selection, reports, the HTML page, the CLI) uses it."""

    directions: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, mapping: dict[str, str]) -> "Objectives":
        bad = {k: v for k, v in mapping.items() if v not in ("maximize", "minimize")}
        if bad:
            raise ValueError(f"objective directions must be maximize or minimize, got {bad}")
        return cls(tuple(mapping.items()))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.directions]

    @property
    def maximize(self) -> list[bool]:
        return [d == "maximize" for _, d in self.directions]

    def direction(self, name: str) -> str:
        return dict(self.directions)[name]

    def sign(self, name: str) -> float:
        """+1 for a maximised objective, -1 for a minimised one."""
        return 1.0 if self.direction(name) == "maximize" else -1.0

    def to_max_form(self, Y: torch.Tensor) -> torch.Tensor:
        """``n x m`` values in this order -> maximisation form."""
        from surrogate.pareto import to_max_form

        return to_max_form(Y, self.maximize)

    def __getitem__(self, name: str) -> str:
        return self.direction(name)

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self.directions)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.directions)
