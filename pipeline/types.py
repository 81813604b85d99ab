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


def this_node() -> str | None:
    """The Ray node this process runs on, as "<ip> <node id[:8]>" (the report's per-node key); None outside Ray."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        return f"{ray.util.get_node_ip_address()} {ray.get_runtime_context().get_node_id()[:8]}"
    except Exception:  # no runtime context (a plain process, a test calling a stage)
        return None


def since_process_start(at: float, digits: int = 2) -> float | None:
    """Seconds from this process's start to `at` (time.time()): a Ray worker's own start and imports before
    an engine's constructor (the report's start phases). None where that cannot be read."""
    try:
        import psutil

        return round(at - psutil.Process().create_time(), digits)
    except Exception:  # a figure for the report only
        return None
