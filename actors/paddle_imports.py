"""paddleocr's import, without what an actor with local models never uses.

An actor's start on a CPU node is mostly imports (README "Speed": 2.25 of 5.6 s on the 2-core
machine were `import paddleocr`). Two parts of it serve only model downloads and are put off until
something asks for them, so a download (no local weights: paddleocr fetches them) still works:

- paddlex's `official_models` (the model hosters: huggingface_hub, modelscope, aistudio_sdk and
  transformers' version checks; ~0.9 of paddleocr's 1.45 s import), loaded on first use;
- modelscope's `torch_utils`, which imports torch (~230 MB, ~1.6 s) to ask whether
  torch.distributed runs: answered "no" where torch is not imported, the real module loaded if
  anything asks for more.
"""

from __future__ import annotations

import importlib
import sys
import types

_OFFICIAL_MODELS = "paddlex.inference.utils.official_models"
_TORCH_UTILS = "modelscope.utils.torch_utils"


def _real(name: str):
    """Drop the stand-in for `name` and import the real module."""
    if getattr(sys.modules.get(name), "__hybridocr_stub__", False):
        sys.modules.pop(name)
    return importlib.import_module(name)


class _OfficialModels:
    """Stands in for paddlex's `official_models` manager until the first attribute is asked for."""

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(_real(_OFFICIAL_MODELS).official_models, attr)


def _stub(name: str, **attrs) -> None:
    """A stand-in module for `name` with `attrs`; any other name asked of it loads the real module."""

    def real(attr: str):
        if attr.startswith("__"):  # the import system's own probes (__path__, __spec__, ...)
            raise AttributeError(attr)
        return getattr(_real(name), attr)

    stub = types.ModuleType(name)
    stub.__hybridocr_stub__ = True
    stub.__getattr__ = real
    for key, value in attrs.items():
        setattr(stub, key, value)
    sys.modules[name] = stub


def lean_paddleocr_imports() -> None:
    """Install the stand-ins (before paddleocr's first import; a no-op after it, or when torch is in)."""
    if _OFFICIAL_MODELS not in sys.modules and "paddlex" not in sys.modules:
        _stub(_OFFICIAL_MODELS, official_models=_OfficialModels())
    if "torch" not in sys.modules and _TORCH_UTILS not in sys.modules:
        _stub(_TORCH_UTILS, is_dist=lambda: False, is_master=lambda group=None: True)
