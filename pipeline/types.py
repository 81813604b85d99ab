"""Typed records passed between stages (the Arrow schema in `schema.py` mirrors them)."""

from __future__ import annotations

from dataclasses import dataclass, field

ROUTES = ("horizontal", "vertical", "table", "photo", "handwriting", "blank")


@dataclass
class OcrLine:
    """One recognised text line: a quadrilateral (4 x/y points, clockwise from top-left), text, score."""

    box: list[list[float]]
    text: str
    score: float

    @property
    def x0(self) -> float:
        return min(p[0] for p in self.box)

    @property
    def x1(self) -> float:
        return max(p[0] for p in self.box)

    @property
    def y0(self) -> float:
        return min(p[1] for p in self.box)

    @property
    def y1(self) -> float:
        return max(p[1] for p in self.box)


@dataclass
class Classification:
    """The route a page takes and the features that decided it."""

    route: str
    features: dict[str, float] = field(default_factory=dict)
