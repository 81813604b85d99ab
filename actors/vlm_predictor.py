"""Ray Data callable around `VlmEngine`: reads the rows that need the VLM, passes every other row on.

The actor is ready as soon as its engine has begun to start (`VlmEngine` builds vLLM in the
background), and Ray Data runs many calls of it at once (`ray_remote_args` in actors/vlm.py:
`calls_per_actor` threads, rows of one page each). So a row that the VLM does not read leaves at
once, also while vLLM is still starting, and the engine holds ~1.1 x max_num_seqs pages at every
moment instead of draining at the end of each batch.
"""

from __future__ import annotations

import asyncio
import sys

import pandas as pd

from actors.vlm import model_label, needs_vlm
from actors.vlm_engine import VlmEngine
from pipeline.config import VlmConfig
from pipeline.pixels import page_pixels
from pipeline.schema import ENGINE_COLUMNS, ensure_columns, tables_to_json
from pipeline.tables import tables_in_text
from pipeline.types import this_node

VLM_COLUMNS = ("vlm_confidence", "vlm_finish_reason", "vlm_prompt_tokens", "vlm_output_tokens", "vlm_attempts", "vlm_problem")


def vlm_tables(text: str, width, height, confidence) -> str:
    """The HTML/Markdown tables the VLM wrote, as the tables column (box: the whole page; no cell boxes)."""
    box = [0.0, 0.0, float(width) if pd.notna(width) else 0.0, float(height) if pd.notna(height) else 0.0]
    score = float(confidence) if confidence is not None and pd.notna(confidence) else 0.0
    return tables_to_json([{"html": t.to_html(), "box": box, "score": score} for t in tables_in_text(text or "")])


class VlmPredictor:
    """`config` is the run configuration (its `vlm` section is used) or a VlmConfig mapping.

    Rows with `error` null and `engine == ""` are read. With `escalate=True` (hybrid mode) PaddleOCR
    rows whose confidence is below `escalate_below` are read again; if the VLM still loops or is cut
    off after the retries, such a row keeps PaddleOCR's text and `vlm_problem` says why. Adds
    VLM_COLUMNS (null on rows the VLM did not read). Safe to call from many threads at once.
    """

    def __init__(self, config: dict, escalate: bool = False, engine: VlmEngine | None = None, on_ready=None):
        section = config.get("vlm", config) if isinstance(config, dict) else config
        self.cfg = section if isinstance(section, VlmConfig) else VlmConfig.model_validate(section)
        self.escalate = escalate
        self.model = model_label(self.cfg)
        self._owns_engine = engine is None
        self.engine = engine or VlmEngine(self.cfg)
        if on_ready is not None:  # told when vLLM is up (the job's timeline); not on a failed start
            self.engine.when_ready(on_ready)

    def close(self) -> None:
        """Stop the engine this predictor started (one handed in belongs to its owner)."""
        if self._owns_engine:
            self._owns_engine = False
            self.engine.close()

    def __del__(self):
        # Ray Data deletes the UDF when it retires the actor gracefully (`__ray_shutdown__`): vLLM's
        # engine core is stopped here, before Ray reaps the actor's child processes, so its
        # frontend does not log an EngineDeadError traceback at the end of every job. Not while the
        # interpreter is finalizing: the engine's loop thread may be gone, and close() would wait on it
        if sys.is_finalizing():
            return
        try:
            self.close()
        except Exception:
            pass

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        for i, future in self._submit(batch):
            self._apply(batch, i, future)
        return self._done(batch)

    async def acall(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The same for an event loop (a Ray Serve replica): awaits the pages instead of blocking a thread."""
        for i, future in self._submit(batch):
            await asyncio.wait([asyncio.wrap_future(future)])  # done or failed: _apply reads which
            self._apply(batch, i, future)
        return self._done(batch)

    def _submit(self, batch: pd.DataFrame) -> list:
        ensure_columns(batch, ENGINE_COLUMNS + VLM_COLUMNS)
        todo = batch.index[needs_vlm(batch, self.escalate, self.cfg.escalate_below)].tolist()
        return [(i, self.engine.read(page_pixels(batch.loc[i]), str(batch.at[i, "page_id"]) if "page_id" in batch else ""))
                for i in todo]

    @staticmethod
    def _done(batch: pd.DataFrame) -> pd.DataFrame:
        batch["image"] = [b""] * len(batch)  # pixels are not needed past this stage
        return batch

    def _apply(self, batch: pd.DataFrame, i, future) -> None:
        try:
            res = future.result()
        except Exception as e:  # the job goes on
            why = f"{type(e).__name__}: {str(e)[:300]}"
            if batch.at[i, "engine"] == "paddleocr":  # escalated: PaddleOCR's reading stays, the row says why
                batch.at[i, "vlm_problem"] = f"error: {why}"
            else:  # this page's error row
                batch.at[i, "error"] = f"vlm: generation failed on this page ({why})"
            return
        before = batch.at[i, "seconds_ocr"] if "seconds_ocr" in batch else None  # hybrid: PaddleOCR's time + the VLM's
        batch.at[i, "seconds_ocr"] = (float(before) if pd.notna(before) else 0.0) + res.seconds
        batch.at[i, "vlm_confidence"] = res.confidence
        batch.at[i, "vlm_finish_reason"] = res.finish_reason
        batch.at[i, "vlm_prompt_tokens"] = res.prompt_tokens
        batch.at[i, "vlm_output_tokens"] = res.output_tokens
        batch.at[i, "vlm_attempts"] = res.attempts
        batch.at[i, "vlm_problem"] = res.problem
        if res.problem and batch.at[i, "engine"] == "paddleocr":
            return  # keep PaddleOCR's reading; the row says the VLM could not do better
        batch.at[i, "text"] = res.text
        batch.at[i, "lines_json"] = "[]"  # a VLM gives page text, no line boxes
        batch.at[i, "tables_json"] = vlm_tables(res.text, batch.at[i, "width"], batch.at[i, "height"], res.confidence)
        batch.at[i, "confidence"] = res.confidence
        batch.at[i, "engine"] = "vlm"
        batch.at[i, "model"] = self.model
        batch.at[i, "node"] = this_node()
