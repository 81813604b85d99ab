"""CI's CPU-only vLLM: the one work-around that lets `import vllm` run next to PyPI's torchvision.

Nothing here acts on GPU installs (see `patch_cpu_torchvision`).
"""

from __future__ import annotations

import os

_TORCHVISION_PATCH = """
def _hybridocr_patch_torchvision():
    import importlib.util, os, sys
    spec = importlib.util.find_spec("torch")
    if spec is None or "torchvision" in sys.modules:
        return False
    import torch
    if hasattr(torch, "_hybridocr_torchvision_lib"):
        return True  # patched before in this process
    tv = importlib.util.find_spec("torchvision")
    if torch.version.cuda is not None or tv is None or not tv.submodule_search_locations:
        return False
    try:
        torch.ops.load_library(os.path.join(list(tv.submodule_search_locations)[0], "_C.so"))
        return False  # torchvision's native library works here: nothing to do
    except (OSError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        lib.define(op + "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    torch._hybridocr_torchvision_lib = lib  # keep the registration alive
    return True
"""


def patch_cpu_torchvision() -> bool:
    """Make `import vllm` work with a CPU torch and PyPI's torchvision (a CUDA build): CI only.

    PyPI's torchvision is built for CUDA: next to a CPU torch its native library (`_C.so`) does
    not load, so the `torchvision::nms` operator is never defined and torchvision's import (which
    vLLM and transformers do) fails with "operator torchvision::nms does not exist". Defining the
    two op schemas that torchvision's Python side registers fake kernels for lets the import
    through; the Qwen2.5-VL image path never calls torchvision's C ops. It acts only when torch is
    a CPU build and torchvision's native library cannot load, so GPU installs are untouched.
    vLLM's CPU engine starts fresh Python processes (spawn, model inspection), so the same code is
    also put into a `sitecustomize` on PYTHONPATH for them. Returns whether it patched.
    """
    scope: dict = {}
    exec(_TORCHVISION_PATCH, scope)
    if not scope["_hybridocr_patch_torchvision"]():
        return False
    import tempfile

    site = os.path.join(tempfile.gettempdir(), f"hybridocr-tvpatch-{os.getuid()}")
    os.makedirs(site, exist_ok=True)
    with open(os.path.join(site, "sitecustomize.py"), "w") as f:
        f.write(_TORCHVISION_PATCH + "\ntry:\n    _hybridocr_patch_torchvision()\nexcept Exception:\n    pass\n")
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if site not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([site] + [p for p in paths if p])
    return True
